"""Verify, then commit: the only way a staged image becomes bootable.

When every chunk of a transfer is in the inactive slot, the device reads it
back and judges it with ``tether.firmware.verify`` at the platform's time the
offer carried (never its own clock): form, signature against the firmware trust
anchors in its metadata, length and hash, class, hardware revision, security
version, validity, trust anchors required. A delta is checked as a patch
(length and hash), applied against the running image, and the result judged as
a full image, then written over the patch. Only then comes the commit: one
metadata write that records the slot, marks it pending with a fresh boot
counter and ends the transfer. Any refusal before it ends the transfer instead,
and the running slot is never written.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from tether.errors import ManifestRefusedError
from tether.firmware.delta import apply_patch
from tether.firmware.manifest import Manifest, SignedManifest, read_envelope
from tether.firmware.verify import Device, Refusal, anchor_name, judge
from tether.sim.ota.flash import Flash, Meta, SlotInfo, Staging

PAGE = 4096  # a delta's result is written a flash page at a time


@dataclass(frozen=True)
class Refused:
    reason: str  # a tether.firmware.verify.Refusal, or busy, too_large
    detail: str

    @property
    def security(self) -> bool:
        """A bad signature is the fingerprint of a substitution: a security event."""
        return self.reason == Refusal.BAD_SIGNATURE


@dataclass(frozen=True)
class Committed:
    slot: str
    version: str


def anchors_of(meta: Meta) -> list[ec.EllipticCurvePublicKey]:
    keys: list[ec.EllipticCurvePublicKey] = []
    for der in meta.anchors:
        key = load_der_public_key(der)
        if isinstance(key, ec.EllipticCurvePublicKey):
            keys.append(key)
    return keys


def identity(meta: Meta, hw: str, device_class: str | None) -> Device:
    """What ``tether.firmware.verify`` needs to know about this device."""
    anchors = anchors_of(meta)
    trust = {*meta.trust, *(anchor_name(key) for key in anchors)}
    return Device(
        hw=hw,
        security_version=meta.security_version,
        anchors=anchors,
        device_class=device_class,
        trust=trust,
    )


def _refusal(exc: ManifestRefusedError) -> Refused:
    return Refused(str(exc.reason), exc.detail)


def running_image(flash: Flash) -> bytes:
    info = flash.meta.info(flash.meta.active)
    return flash.read(flash.meta.active, info.size) if info is not None else b""


def judge_offer(
    flash: Flash, hw: str, device_class: str | None, envelope: bytes, platform_time: int
) -> tuple[SignedManifest, Manifest] | Refused:
    """The early check, before a byte is transferred: everything but the image's hash."""
    try:
        signed = read_envelope(envelope)
    except ManifestRefusedError as exc:
        return _refusal(exc)
    judged = judge(signed, identity(flash.meta, hw, device_class), platform_time)
    if isinstance(judged, ManifestRefusedError):
        return _refusal(judged)
    size = judged.delta.size if judged.delta is not None else judged.size
    if judged.size > flash.slot_size or size > flash.slot_size:
        return Refused("too_large", f"{judged.image} does not fit a {flash.slot_size}-byte slot")
    if judged.delta is not None:
        base = hashlib.sha256(running_image(flash)).hexdigest()
        if base != judged.delta.base_sha256:
            return Refused(
                Refusal.WRONG_BASE,
                f"the patch needs base {judged.delta.base_sha256}, this device runs {base}",
            )
    return signed, judged


def discard(flash: Flash) -> None:
    """End the staged transfer; the slot's bytes are left as harmless garbage."""
    flash.commit(dataclasses.replace(flash.meta, staging=None))


def verify_then_commit(flash: Flash, hw: str, device_class: str | None) -> Committed | Refused:
    """Judge the complete staged transfer, and flip to it or discard it."""
    meta = flash.meta
    staging = meta.staging
    if staging is None:
        return Refused("no_transfer", "nothing is staged")
    outcome = _judge_staged(flash, staging, hw, device_class)
    if isinstance(outcome, Refused):
        discard(flash)
        return outcome
    manifest, image = outcome
    if manifest.delta is not None:
        marked = dataclasses.replace(staging, patching=True)
        flash.commit(dataclasses.replace(flash.meta, staging=marked))
        for at in range(0, len(image), PAGE):
            flash.write(staging.slot, at, image[at : at + PAGE])
    meta = flash.meta
    info = SlotInfo(manifest.version, manifest.security_version, manifest.size, manifest.sha256)
    flash.commit(
        dataclasses.replace(
            meta.with_info(staging.slot, info),
            pending=staging.slot,
            boot_count=0,
            staging=None,
            previous_fw=meta.version,
            rolled_back=False,
        )
    )
    return Committed(staging.slot, manifest.version)


def _judge_staged(
    flash: Flash, staging: Staging, hw: str, device_class: str | None
) -> tuple[Manifest, bytes] | Refused:
    device = identity(flash.meta, hw, device_class)
    try:
        signed = read_envelope(staging.envelope)
    except ManifestRefusedError as exc:
        return _refusal(exc)
    received = flash.read(staging.slot, staging.size)
    judged = judge(signed, device, staging.platform_time)
    if isinstance(judged, ManifestRefusedError):
        return _refusal(judged)
    image = received
    if judged.delta is not None:
        delta = judged.delta
        if len(received) != delta.size:
            return Refused(
                Refusal.SIZE_MISMATCH, f"the patch is {len(received)} bytes, not {delta.size}"
            )
        if hashlib.sha256(received).hexdigest() != delta.sha256:
            return Refused(Refusal.HASH_MISMATCH, "the patch does not hash to the manifest's")
        try:
            image = apply_patch(running_image(flash), received, delta.base_sha256, judged.sha256)
        except ManifestRefusedError as exc:
            return _refusal(exc)
    final = judge(signed, device, staging.platform_time, image)
    if isinstance(final, ManifestRefusedError):
        return _refusal(final)
    return final, image
