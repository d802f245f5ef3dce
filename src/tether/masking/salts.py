"""Key material of a masking run: versioned salts, the token key, the mapping key.

Direct identifiers are hashed with the salt valid on the run's date. Each salt has
a validity window ``[valid_from, valid_until)``; after ``valid_until`` it may still
be asked for by name for :data:`OVERLAP` (30 days), so this quarter's data can be
masked with last quarter's salt and joined to last quarter's exports. After the
overlap the salt is retired: asking for it raises :class:`SaltRetiredError`, and
``tether mask keys prune`` destroys it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from dataclasses import dataclass
from datetime import date, timedelta

from tether.masking.errors import KeyMaterialError, SaltRetiredError

OVERLAP = timedelta(days=30)
MIN_SECRET_BYTES = 16
KEY_BYTES = 32


@dataclass(frozen=True)
class SaltVersion:
    """One salt and its validity window (``valid_until`` is exclusive; None = open)."""

    version: str
    valid_from: date
    valid_until: date | None
    secret: bytes

    def __post_init__(self) -> None:
        if not self.version or not self.version.replace("-", "").replace("_", "").isalnum():
            raise KeyMaterialError(
                f"salt version {self.version!r}: use letters, digits, '-' or '_' (e.g. 2026q2)"
            )
        if len(self.secret) < MIN_SECRET_BYTES:
            raise KeyMaterialError(
                f"salt {self.version}: secret has {len(self.secret)} bytes, needs at least "
                f"{MIN_SECRET_BYTES}; generate one with `tether mask keys init`"
            )
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise KeyMaterialError(f"salt {self.version}: valid_until must follow valid_from")

    @property
    def usable_until(self) -> date | None:
        """Last day (exclusive) on which the salt may be used: window end plus overlap."""
        return None if self.valid_until is None else self.valid_until + OVERLAP

    def is_current(self, at: date) -> bool:
        """True when ``at`` lies inside the salt's own validity window."""
        return self.valid_from <= at and (self.valid_until is None or at < self.valid_until)

    def is_usable(self, at: date) -> bool:
        """True inside the window or its 30-day overlap."""
        end = self.usable_until
        return self.valid_from <= at and (end is None or at < end)

    def public(self) -> dict[str, str | None]:
        """The salt's description without its secret."""
        return {
            "version": self.version,
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "usable_until": self.usable_until.isoformat() if self.usable_until else None,
        }


@dataclass(frozen=True)
class KeyRing:
    """All key material a masking run needs. Never written into an output."""

    salts: tuple[SaltVersion, ...]
    token_key: bytes
    mapping_key: bytes | None = None

    def __post_init__(self) -> None:
        if len(self.token_key) < KEY_BYTES:
            raise KeyMaterialError(f"token_key must have at least {KEY_BYTES} bytes")
        if self.mapping_key is not None and len(self.mapping_key) != KEY_BYTES:
            raise KeyMaterialError(f"mapping_key must have exactly {KEY_BYTES} bytes (AES-256)")
        names = [s.version for s in self.salts]
        if len(set(names)) != len(names):
            raise KeyMaterialError(f"salt versions must be unique, got {names}")
        ordered = sorted(self.salts, key=lambda s: s.valid_from)
        for a, b in itertools.pairwise(ordered):
            if a.valid_until is None or a.valid_until > b.valid_from:
                raise KeyMaterialError(
                    f"salts {a.version} and {b.version} have overlapping validity windows; "
                    "each salt's valid_until must be at or before the next one's valid_from"
                )

    def current_salt(self, at: date) -> SaltVersion:
        """The salt whose validity window contains ``at``."""
        for s in self.salts:
            if s.is_current(at):
                return s
        raise KeyMaterialError(
            f"no salt is valid on {at.isoformat()}; add one with "
            "`tether mask keys rotate --valid-from DATE`"
        )

    def salt(self, version: str, at: date) -> SaltVersion:
        """The named salt, if it may still be used on ``at``."""
        for s in self.salts:
            if s.version == version:
                if s.is_usable(at):
                    return s
                if at < s.valid_from:
                    raise KeyMaterialError(
                        f"salt {version} only becomes valid on {s.valid_from.isoformat()}"
                    )
                raise SaltRetiredError(
                    f"salt {version} was retired on {s.usable_until}: its 30-day overlap is "
                    "over, so data masked with it can no longer be joined to new data. Mask "
                    "with the current salt instead."
                )
        known = ", ".join(s.version for s in self.salts) or "none"
        raise KeyMaterialError(f"no salt version {version!r} in the key ring (known: {known})")

    def select(self, at: date, version: str | None = None) -> SaltVersion:
        """The salt for a run on ``at``: the named one if given, else the current one."""
        return self.current_salt(at) if version is None else self.salt(version, at)


def hmac_hex(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 of ``message`` under ``key``, as 64 lowercase hex digits."""
    return hmac.new(key, message, hashlib.sha256).hexdigest()
