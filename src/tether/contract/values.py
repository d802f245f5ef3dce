"""Self-validating value objects for the contract's nouns."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tether.errors import InvalidSerialError

_SERIAL = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True, slots=True)
class Serial:
    """A device serial: 1-64 characters of ``A-Z a-z 0-9 . _ -`` (contract section 1)."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not _SERIAL.fullmatch(self.value):
            raise InvalidSerialError(
                f"{self.value!r} is not a device serial: use 1-64 characters of A-Z a-z 0-9 . _ -"
            )

    def __str__(self) -> str:
        return self.value
