"""Durations written the way operators write them: ``30d``, ``12h``, ``90m``, ``45s``."""

from __future__ import annotations

import re

from tether.errors import SettingsError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``30d``; SettingsError naming the accepted forms."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise SettingsError(
            f"{text!r} is not a duration; write a number and a unit: 45s, 90m, 12h, 30d, 2w"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]
