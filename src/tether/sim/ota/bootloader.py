"""The immutable bootloader: which slot runs, and the boot counter that undoes a bad update.

It reads the metadata and nothing else the application could have broken. With
no slot pending it boots the active slot. With one pending it checks the slot's
hash against the metadata, counts the attempt in flash *before* jumping to it,
and boots it; once ``max_boots`` attempts have passed without the application
marking the slot good (a crash, a hang, an attestation never acknowledged), or
when the slot does not hash to what the flip recorded, it clears the pending
slot, records the rollback and boots the active slot, which was never touched.
"""

from __future__ import annotations

import dataclasses
import hashlib

from tether.sim.ota.flash import Flash, Slot

MAX_BOOTS = 3


def intact(flash: Flash, slot: Slot) -> bool:
    info = flash.meta.info(slot)
    if info is None:
        return False
    return hashlib.sha256(flash.read(slot, info.size)).hexdigest() == info.sha256


def choose_slot(flash: Flash, max_boots: int = MAX_BOOTS) -> Slot:
    """The slot to boot now, after persisting what this boot changes."""
    meta = flash.meta
    pending = meta.pending
    if pending is None:
        return meta.active
    if meta.boot_count >= max_boots or not intact(flash, pending):
        failed = meta.info(pending)
        flash.commit(
            dataclasses.replace(
                meta,
                pending=None,
                boot_count=0,
                rolled_back=True,
                previous_fw=failed.version if failed is not None else meta.previous_fw,
            )
        )
        return meta.active
    flash.commit(dataclasses.replace(meta, boot_count=meta.boot_count + 1))
    return pending
