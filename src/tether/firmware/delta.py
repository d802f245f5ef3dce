"""Delta images: bsdiff4 patches that turn a base image into the new one.

A patch is only as good as the base it is applied to, so ``apply_patch`` checks
the base's hash before patching and the result's hash after: a wrong base or a
damaged patch is a typed refusal, never a silently wrong image.
"""

from __future__ import annotations

import hashlib

import bsdiff4

from tether.errors import ManifestRefusedError
from tether.firmware.verify import Refusal


def make_patch(base: bytes, image: bytes) -> bytes:
    """The bsdiff4 patch from ``base`` to ``image``."""
    return bytes(bsdiff4.diff(base, image))


def apply_patch(base: bytes, patch: bytes, base_sha256: str, result_sha256: str) -> bytes:
    """The full image ``patch`` makes of ``base``; ManifestRefusedError if either is wrong."""
    found = hashlib.sha256(base).hexdigest()
    if found != base_sha256:
        raise ManifestRefusedError(
            Refusal.WRONG_BASE, f"the base image hashes to {found}, the patch needs {base_sha256}"
        )
    try:
        image = bytes(bsdiff4.patch(base, patch))
    except (ValueError, RuntimeError, MemoryError) as exc:
        raise ManifestRefusedError(Refusal.MALFORMED, f"the patch does not apply: {exc}") from None
    result = hashlib.sha256(image).hexdigest()
    if result != result_sha256:
        raise ManifestRefusedError(
            Refusal.HASH_MISMATCH, f"the patched image hashes to {result}, expected {result_sha256}"
        )
    return image
