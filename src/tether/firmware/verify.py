"""What a device checks before it commits an image: the contract's section 10.

The checks run in the order a device can afford them: the manifest's form, its
signature against the firmware trust anchors the device carries, the image's
length and hash, the device's hardware revision, the security version (never
lower than the running one), the validity window judged at the time the caller
gives (the platform's signed time, never the device clock), and the trust
anchors the image needs. The first failure is the answer, as a typed refusal.

The same code serves the simulator's devices, ``tether firmware verify`` and
tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from tether.errors import ManifestRefusedError
from tether.firmware.manifest import Manifest, SignedManifest, parse_manifest


class Refusal(StrEnum):
    MALFORMED = "malformed"  # not a manifest in canonical form
    BAD_SIGNATURE = "bad_signature"  # no trust anchor the device carries signed it
    SIZE_MISMATCH = "size_mismatch"
    HASH_MISMATCH = "hash_mismatch"
    WRONG_CLASS = "wrong_class"
    WRONG_HW = "wrong_hw"  # the device's hardware revision is not listed
    DOWNGRADE = "downgrade"  # security_version lower than the running one
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    MISSING_TRUST = "missing_trust"  # the image needs a trust anchor the device lacks
    WRONG_BASE = "wrong_base"  # a delta's base is not the image the device holds
    BAD_TIME = "bad_time"  # the platform's time statement is unsigned, stale or not ours


@dataclass(frozen=True)
class Device:
    """What the device knows about itself when it judges an image."""

    hw: str
    security_version: int
    anchors: list[ec.EllipticCurvePublicKey]
    device_class: str | None = None  # checked when given
    trust: Collection[str] = ()  # names of the trust anchors it holds (``requires_trust``)


def anchor_name(key: ec.EllipticCurvePublicKey) -> str:
    """A trust anchor's name: ``sha256:`` and the hash of its DER SubjectPublicKeyInfo."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def signature_valid(signed: SignedManifest, anchors: Iterable[ec.EllipticCurvePublicKey]) -> bool:
    return signed_by(signed.body, signed.signature, anchors)


def signed_by(body: bytes, signature: bytes, anchors: Iterable[ec.EllipticCurvePublicKey]) -> bool:
    """Whether one of ``anchors`` made the raw ``r ‖ s`` ``signature`` over ``body``."""
    if len(signature) != 64:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    der = encode_dss_signature(r, s)
    digest = hashlib.sha256(body).digest()
    for key in anchors:
        try:
            key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        except InvalidSignature:
            continue
        return True
    return False


def _refused(reason: Refusal, detail: str) -> ManifestRefusedError:
    return ManifestRefusedError(reason.value, detail)


def verify(
    signed: SignedManifest, device: Device, now: float, image: bytes | None = None
) -> Manifest:
    """The manifest if the device may install the image; ManifestRefusedError if not.

    ``image`` is the full image as it will boot (after a delta is applied); when
    None, the hash is left to the caller (a device checks it after the transfer).
    ``now`` is the time to judge validity at, in seconds since the epoch.
    """
    refusal = judge(signed, device, now, image)
    if isinstance(refusal, ManifestRefusedError):
        raise refusal
    return refusal


def judge(
    signed: SignedManifest, device: Device, now: float, image: bytes | None = None
) -> Manifest | ManifestRefusedError:
    """As ``verify``, returning the refusal instead of raising it."""
    try:
        manifest = parse_manifest(signed.body)
    except ManifestRefusedError as exc:
        return exc
    if not signature_valid(signed, device.anchors):
        return _refused(
            Refusal.BAD_SIGNATURE,
            f"the manifest of {manifest.image} is not signed by a firmware trust anchor "
            "this device carries",
        )
    if image is not None:
        if len(image) != manifest.size:
            return _refused(
                Refusal.SIZE_MISMATCH,
                f"the image is {len(image)} bytes, the manifest says {manifest.size}",
            )
        actual = hashlib.sha256(image).hexdigest()
        if actual != manifest.sha256:
            return _refused(
                Refusal.HASH_MISMATCH,
                f"the image hashes to {actual}, the manifest says {manifest.sha256}",
            )
    if device.device_class is not None and manifest.device_class != device.device_class:
        return _refused(
            Refusal.WRONG_CLASS,
            f"the image is for class {manifest.device_class}, not {device.device_class}",
        )
    if device.hw not in manifest.hw:
        return _refused(
            Refusal.WRONG_HW,
            f"hardware revision {device.hw} is not among {', '.join(manifest.hw)}",
        )
    if manifest.security_version < device.security_version:
        return _refused(
            Refusal.DOWNGRADE,
            f"security version {manifest.security_version} is lower than the running "
            f"{device.security_version}",
        )
    if now < manifest.not_before:
        return _refused(
            Refusal.NOT_YET_VALID,
            f"valid from {manifest.not_before}, judged at {int(now)}",
        )
    if now >= manifest.not_after:
        return _refused(Refusal.EXPIRED, f"valid until {manifest.not_after}, judged at {int(now)}")
    lacking = [name for name in manifest.requires_trust if name not in device.trust]
    if lacking:
        return _refused(
            Refusal.MISSING_TRUST,
            f"the image needs trust anchors the device lacks: {', '.join(lacking)}",
        )
    return manifest
