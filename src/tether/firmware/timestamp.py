"""The platform's signed time: what a device judges a manifest's validity window by.

A device has no trustworthy clock (a brush counts from 1970 after a flat
battery; a cart's may be hours off). Before it judges an image it sends a fresh
random nonce; the platform answers with its current time and that nonce, signed
with the firmware-signing key the device already trusts for manifests:

    {"time": base64(canonical {"nonce": "<hex>", "time": <seconds>}),
     "signature": base64(r ‖ s)}

The device checks the signature against its firmware trust anchors and that the
nonce is the one it sent (so an old answer cannot be replayed to it), then
judges ``not_before``/``not_after`` at that time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric import ec

from tether.errors import ManifestRefusedError
from tether.firmware.manifest import canonical_json
from tether.firmware.verify import Refusal, signed_by
from tether.keys.base import SigningKey

NONCE = re.compile(r"[0-9a-f]{16,64}")  # 8 to 32 random bytes, lower-case hex


def _refused(detail: str) -> ManifestRefusedError:
    return ManifestRefusedError(Refusal.BAD_TIME.value, detail)


def sign_time(key: SigningKey, now: float, nonce: str) -> bytes:
    """The signed statement that the platform's time is ``now`` (whole seconds) for ``nonce``."""
    if not NONCE.fullmatch(nonce):
        raise ValueError("a time nonce is 16 to 64 lower-case hex digits (8 to 32 random bytes)")
    body = canonical_json({"nonce": nonce, "time": int(now)})
    signature = key.sign_digest(hashlib.sha256(body).digest())
    return canonical_json(
        {"signature": base64.b64encode(signature).decode(), "time": base64.b64encode(body).decode()}
    )


def read_time(statement: bytes, nonce: str, anchors: Iterable[ec.EllipticCurvePublicKey]) -> int:
    """The platform's time in ``statement`` if a trust anchor signed it for ``nonce``.

    Raises ManifestRefusedError (``bad_time``) naming what is wrong.
    """
    try:
        doc = json.loads(statement)
        body = base64.b64decode(doc["time"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
        said = json.loads(body)
        at, answered = said["time"], said["nonce"]
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise _refused('a time statement is {"time": base64 JSON, "signature": base64}') from None
    if not signed_by(body, signature, anchors):
        raise _refused("the time statement is not signed by a firmware trust anchor")
    if answered != nonce:
        raise _refused("the time statement answers another nonce: an old or someone else's")
    if type(at) is not int or at < 0:
        raise _refused("the time statement's time is not whole seconds since the epoch")
    return at
