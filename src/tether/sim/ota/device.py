"""A simulated device's firmware-update side: flash, bootloader, receiver, installer, attestation.

``OtaDevice`` is what the rest of the simulator talks to:

- ``power_on()`` runs the bootloader over whatever flash holds, then the image
  it chose: an image that crashes at boot on this revision never attests
  (``Boot.crashed``); one that comes up has a boot record waiting
  (``Boot.record``) until ``acknowledge()`` — the platform's ack — marks its
  slot good.
- ``offer(envelope, platform_time, payload)`` starts or resumes a transfer and
  answers with the cursor to resume after, or a refusal; ``receive(chunk)``
  answers each chunk. When the last chunk lands the device verifies, commits
  with one metadata write and reboots into the new slot.
- Every persistent write can be the one where power fails: the method raises
  ``PowerLoss`` and the device is off until ``power_on()``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tether.sim.ota.bootloader import MAX_BOOTS, choose_slot
from tether.sim.ota.flash import Flash, Meta, Power, Slot, SlotInfo, Staging, other
from tether.sim.ota.image import NO_DEFECTS, Defects, read_defects
from tether.sim.ota.install import Committed, Refused, judge_offer, verify_then_commit
from tether.sim.ota.receiver import Ack, ChunkReceiver, Cursor, Paused, Reply
from tether.sim.ota.record import BootRecord


@dataclass(frozen=True)
class Boot:
    """One power-up: the slot the bootloader chose and what the image did."""

    slot: Slot
    version: str
    crashed: bool
    record: BootRecord | None  # the attestation to send; None when it crashed first


@dataclass(frozen=True)
class Event:
    """Something the device reports beside its records."""

    kind: str  # refused, installed, rolled_back, paused
    detail: str
    security: bool = False


@dataclass(frozen=True)
class Accepted:
    """An offer the device takes: resume after ``cursor.cursor``."""

    cursor: Cursor


Answer = Accepted | Refused | Committed


def der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class OtaDevice:
    def __init__(
        self,
        flash: Flash,
        hw: str,
        device_class: str | None = None,
        *,
        max_boots: int = MAX_BOOTS,
    ) -> None:
        self.flash = flash
        self.hw = hw
        self.device_class = device_class
        self.max_boots = max_boots
        self.events: list[Event] = []  # reported before any power loss; kept by the harness
        self.boots: list[Boot] = []
        self.running: Slot | None = None
        self.receiver = ChunkReceiver(flash)
        self.record: BootRecord | None = None  # sent, not yet acknowledged

    @classmethod
    def provision(
        cls,
        image: bytes,
        version: str,
        hw: str,
        anchors: Iterable[ec.EllipticCurvePublicKey],
        *,
        security_version: int = 0,
        device_class: str | None = None,
        trust: Iterable[str] = (),
        slot_size: int | None = None,
        max_boots: int = MAX_BOOTS,
        power: Power | None = None,
    ) -> OtaDevice:
        """A factory-fresh device running ``image`` from slot A, not yet powered on."""
        info = SlotInfo(version, security_version, len(image), hashlib.sha256(image).hexdigest())
        meta = Meta(
            active="A",
            slot_a=info,
            slot_b=None,
            security_version=security_version,
            anchors=tuple(der(key) for key in anchors),
            trust=tuple(sorted(set(trust))),
            good="A",
        )
        flash = Flash(slot_size or max(2 * len(image), 4096), meta, power)
        flash.write("A", 0, image)
        return cls(flash, hw, device_class, max_boots=max_boots)

    # -- booting -------------------------------------------------------------------------

    @property
    def version(self) -> str | None:
        """The version running now; None while the device is off or crashed."""
        if self.running is None:
            return None
        info = self.flash.meta.info(self.running)
        return info.version if info is not None else None

    @property
    def defects(self) -> Defects:
        """What the running image declares (``NO_DEFECTS`` when nothing runs)."""
        if self.running is None:
            return NO_DEFECTS
        info = self.flash.meta.info(self.running)
        return read_defects(self.flash.read(self.running, info.size)) if info else NO_DEFECTS

    def power_on(self) -> Boot:
        """The bootloader, then the chosen image. RAM starts empty."""
        self.flash.power.restore()
        self.running = None
        self.record = None
        self.receiver = ChunkReceiver(self.flash)
        slot = choose_slot(self.flash, self.max_boots)
        meta = self.flash.meta
        info = meta.info(slot)
        assert info is not None, "the bootloader chose an empty slot"
        image = self.flash.read(slot, info.size)
        if read_defects(image).crashes_at_boot(self.hw):
            boot = Boot(slot, info.version, crashed=True, record=None)
        else:
            self.running = slot
            self.record = BootRecord(info.version, slot, meta.previous_fw, meta.rolled_back)
            boot = Boot(slot, info.version, crashed=False, record=self.record)
            if meta.rolled_back and meta.pending is None:
                self._event("rolled_back", f"returned to {info.version} from {meta.previous_fw}")
        self.boots.append(boot)
        return boot

    def boot_until_up(self, limit: int = 16) -> Boot:
        """Power on again after every crash (the watchdog), until an image comes up."""
        for _ in range(limit):
            boot = self.power_on()
            if not boot.crashed:
                return boot
        raise RuntimeError(f"the device did not come up in {limit} boots: it is bricked")

    def crash(self) -> Boot:
        """The running image crashed (a declared defect): the watchdog resets the device."""
        return self.power_on()

    def acknowledge(self) -> None:
        """The platform acknowledged the boot record: the running slot is good."""
        if self.running is None or self.record is None:
            return
        meta = self.flash.meta
        if meta.pending == self.running:
            info = meta.info(self.running)
            floor = max(meta.security_version, info.security_version if info else 0)
            self.flash.commit(
                dataclasses.replace(
                    meta,
                    active=self.running,
                    pending=None,
                    boot_count=0,
                    good=self.running,
                    security_version=floor,
                    rolled_back=False,
                )
            )
        elif meta.rolled_back or meta.good != self.running:
            self.flash.commit(dataclasses.replace(meta, rolled_back=False, good=self.running))
        self.record = None

    # -- transfers -------------------------------------------------------------------------

    def offer(self, envelope: bytes, platform_time: int, payload: int) -> Answer:
        """A sender connects with an update: resume it, start it, finish it or refuse it."""
        if self.running is None:
            return Refused("off", "the device is not running")
        meta = self.flash.meta
        if meta.pending is not None:
            return Refused("busy", "the last update is still on trial; acknowledge its boot first")
        judged = judge_offer(self.flash, self.hw, self.device_class, envelope, platform_time)
        if isinstance(judged, Refused):
            self._refused(judged)
            return judged
        _, manifest = judged
        size = manifest.delta.size if manifest.delta is not None else manifest.size
        staging = meta.staging
        if (
            staging is None
            or staging.envelope != envelope
            or staging.payload != payload
            or staging.patching
        ):
            staging = Staging(other(meta.active), envelope, platform_time, payload, size)
            self.flash.commit(dataclasses.replace(meta, staging=staging))
        cursor = self.receiver.connect()
        assert cursor is not None
        if cursor.complete:  # every chunk landed before the power or the link went
            return self._install()
        return Accepted(cursor)

    def receive(self, chunk: bytes) -> Reply:
        """One chunk from the sender, answered; the last one also installs the image."""
        reply = self.receiver.receive(chunk)
        if isinstance(reply, Ack) and reply.complete and self.flash.meta.staging is not None:
            self._install()
        elif isinstance(reply, Paused) and self.receiver.failures == self.receiver.retries + 1:
            self._event("paused", f"chunk {reply.expected} failed {self.receiver.failures} times")
        return reply

    def _install(self) -> Committed | Refused:
        outcome = verify_then_commit(self.flash, self.hw, self.device_class)
        if isinstance(outcome, Refused):
            self._refused(outcome)
            return outcome
        self._event("installed", f"{outcome.version} into slot {outcome.slot}; rebooting")
        self.power_on()
        return outcome

    def _refused(self, refused: Refused) -> None:
        self._event("refused", f"{refused.reason}: {refused.detail}", security=refused.security)

    def _event(self, kind: str, detail: str, security: bool = False) -> None:
        self.events.append(Event(kind, detail, security))
