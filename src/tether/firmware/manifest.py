"""The signed firmware manifest of the wire contract (section 10).

A manifest is a JSON object with the contract's fields and tether's two
additions (``class``; ``delta`` on delta images), encoded canonically: keys
sorted, no spaces, ASCII only, integers only. Its signature is ECDSA P-256 over
SHA-256 of exactly those bytes, as raw big-endian ``r ‖ s`` (64 bytes), made by
the firmware-signing key.

What travels beside an image is the envelope, a small JSON document:
``{"manifest": "<base64 of the canonical bytes>", "signature": "<base64 r‖s>"}``.
Carrying the signed bytes themselves means a device never has to re-encode JSON
to check a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tether.errors import FirmwareError, ManifestRefusedError
from tether.keys import SigningKey

#: ``MAJOR.MINOR.PATCH`` with an optional ``-label``; numbers without leading zeros.
VERSION = re.compile(r"(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(-[0-9A-Za-z.]{1,16})?")
VERSION_MAX = 32
HW = re.compile(r"[A-Za-z0-9._-]{1,32}")
TRUST = re.compile(r"[A-Za-z0-9:._/-]{1,128}")
SECURITY_VERSION_MAX = 2**32 - 1
TIME_MAX = 2**40  # seconds since the epoch; far past any firmware's life
DELTA_FORMAT = "bsdiff4"

_FIELDS = {
    "image",
    "class",
    "version",
    "security_version",
    "hw",
    "size",
    "sha256",
    "not_before",
    "not_after",
    "requires_trust",
}
_OPTIONAL = {"delta_from", "delta"}
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_version(version: str) -> str:
    """``version`` if it is a firmware version tether accepts; FirmwareError if not."""
    if len(version) > VERSION_MAX or not VERSION.fullmatch(version):
        raise FirmwareError(
            f"{version!r} is not a firmware version; write MAJOR.MINOR.PATCH with an "
            "optional -label, e.g. 1.4.2 or 2.0.0-rc.1"
        )
    return version


def check_hw(revisions: list[str]) -> list[str]:
    """The hardware revisions, deduplicated and sorted; FirmwareError if any is malformed."""
    if not revisions:
        raise FirmwareError("name at least one hardware revision the image runs on (--hw)")
    for rev in revisions:
        if not HW.fullmatch(rev):
            raise FirmwareError(
                f"{rev!r} is not a hardware revision; use 1-32 of A-Z a-z 0-9 . _ -"
            )
    return sorted(set(revisions))


def check_trust(anchors: list[str]) -> list[str]:
    for anchor in anchors:
        if not TRUST.fullmatch(anchor):
            raise FirmwareError(
                f"{anchor!r} is not a trust anchor name; use 1-128 of A-Z a-z 0-9 : . _ / -"
            )
    return sorted(set(anchors))


def check_security_version(value: int) -> int:
    if not 0 <= value <= SECURITY_VERSION_MAX:
        raise FirmwareError(
            f"security version {value} is out of range; use a whole number 0-{SECURITY_VERSION_MAX}"
        )
    return value


@dataclass(frozen=True)
class Delta:
    """How a delta image turns the base into the full image."""

    base_sha256: str  # the base image the patch applies to
    size: int  # the patch's own length and hash, for the transfer
    sha256: str
    format: str = DELTA_FORMAT

    def to_json(self) -> dict[str, Any]:
        return {
            "base_sha256": self.base_sha256,
            "format": self.format,
            "sha256": self.sha256,
            "size": self.size,
        }


@dataclass(frozen=True)
class Manifest:
    """The signed fields. ``size`` and ``sha256`` are always the full image's."""

    image: str
    device_class: str
    version: str
    security_version: int
    hw: list[str]
    size: int
    sha256: str
    not_before: int
    not_after: int
    requires_trust: list[str] = field(default_factory=list)
    delta_from: str | None = None
    delta: Delta | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": self.image,
            "class": self.device_class,
            "version": self.version,
            "security_version": self.security_version,
            "hw": list(self.hw),
            "size": self.size,
            "sha256": self.sha256,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "requires_trust": list(self.requires_trust),
        }
        if self.delta_from is not None:
            out["delta_from"] = self.delta_from
        if self.delta is not None:
            out["delta"] = self.delta.to_json()
        return out

    def canonical(self) -> bytes:
        return canonical_json(self.to_json())


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class SignedManifest:
    """The canonical manifest bytes and their raw ``r ‖ s`` signature."""

    body: bytes
    signature: bytes

    def envelope(self) -> bytes:
        """The JSON document that travels with the image."""
        return canonical_json(
            {
                "manifest": base64.b64encode(self.body).decode(),
                "signature": base64.b64encode(self.signature).decode(),
            }
        )

    def manifest(self) -> Manifest:
        """The manifest the bytes hold (not yet trusted: see ``tether.firmware.verify``)."""
        return parse_manifest(self.body)


def sign_manifest(manifest: Manifest, key: SigningKey) -> SignedManifest:
    body = manifest.canonical()
    return SignedManifest(body, key.sign_digest(hashlib.sha256(body).digest()))


def _refuse(detail: str) -> ManifestRefusedError:
    return ManifestRefusedError("malformed", detail)


def read_envelope(data: bytes) -> SignedManifest:
    """The envelope's manifest bytes and signature; ``malformed`` refusals when it is not one."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _refuse("the manifest envelope is not JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"manifest", "signature"}:
        raise _refuse('the manifest envelope must be {"manifest": ..., "signature": ...}')
    if not all(isinstance(doc[k], str) for k in doc):
        raise _refuse("the envelope's manifest and signature must be base64 strings")
    try:
        body = base64.b64decode(doc["manifest"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("the envelope's manifest or signature is not base64") from None
    return SignedManifest(body, signature)


def _int(doc: dict[str, Any], name: str, low: int, high: int) -> int:
    value = doc[name]
    if type(value) is not int or not low <= value <= high:
        raise _refuse(f"{name} must be a whole number {low}-{high}")
    return value


def _str(doc: dict[str, Any], name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = doc[name]
    if not isinstance(value, str) or not value or (pattern and not pattern.fullmatch(value)):
        raise _refuse(f"{name} is missing or malformed")
    return value


def _strings(doc: dict[str, Any], name: str, pattern: re.Pattern[str]) -> list[str]:
    value = doc[name]
    if not isinstance(value, list) or not all(
        isinstance(v, str) and pattern.fullmatch(v) for v in value
    ):
        raise _refuse(f"{name} must be a list of names")
    return list(value)


def parse_manifest(body: bytes) -> Manifest:
    """The manifest in canonical bytes; a ``malformed`` refusal for anything else.

    Bytes that are valid JSON but not in canonical form are refused too: the
    signed bytes and the fields read from them must be one and the same.
    """
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _refuse("the manifest is not JSON") from None
    if not isinstance(doc, dict):
        raise _refuse("the manifest is not a JSON object")
    missing = _FIELDS - set(doc)
    extra = set(doc) - _FIELDS - _OPTIONAL
    if missing or extra:
        raise _refuse(f"the manifest lacks {sorted(missing)} or has unknown fields {sorted(extra)}")
    delta: Delta | None = None
    if "delta" in doc:
        raw = doc["delta"]
        if (
            not isinstance(raw, dict)
            or set(raw) != {"base_sha256", "format", "sha256", "size"}
            or raw["format"] != DELTA_FORMAT
        ):
            raise _refuse(f"delta must be an object with base_sha256, format {DELTA_FORMAT}, ...")
        delta = Delta(
            base_sha256=_str(raw, "base_sha256", _SHA256),
            size=_int(raw, "size", 0, 2**63 - 1),
            sha256=_str(raw, "sha256", _SHA256),
        )
    if ("delta" in doc) != ("delta_from" in doc):
        raise _refuse("delta_from and delta come together or not at all")
    manifest = Manifest(
        image=_str(doc, "image"),
        device_class=_str(doc, "class"),
        version=_str(doc, "version", VERSION),
        security_version=_int(doc, "security_version", 0, SECURITY_VERSION_MAX),
        hw=_strings(doc, "hw", HW),
        size=_int(doc, "size", 0, 2**63 - 1),
        sha256=_str(doc, "sha256", _SHA256),
        not_before=_int(doc, "not_before", 0, TIME_MAX),
        not_after=_int(doc, "not_after", 0, TIME_MAX),
        requires_trust=_strings(doc, "requires_trust", TRUST),
        delta_from=_str(doc, "delta_from", VERSION) if "delta_from" in doc else None,
        delta=delta,
    )
    if manifest.canonical() != body:
        raise _refuse("the manifest bytes are not in canonical form")
    return manifest
