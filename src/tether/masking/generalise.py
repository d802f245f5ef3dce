"""Generalisers of the sensitive bucket: the rules, as one value at a time.

The engines express the same rules as column expressions; these functions are the
reference they are tested against, and the row-at-a-time baseline of the benchmark.
Every generaliser maps None to None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime

# "<street>, <city>, <region> <postcode>": the last two comma-separated parts are
# kept, the postcode dropped. Written to mean the same in Python, Rust and Java regex.
ADDRESS_PATTERN = r"^.*,\s*([^,]+?)\s*,\s*([A-Za-z][A-Za-z .'-]*?)[\s0-9-]*$"
_ADDRESS_RE = re.compile(ADDRESS_PATTERN)
GENERALISED_ADDRESS = r"^[^,0-9]+, [^,0-9]+$"
QUARTILES = ("Q1", "Q2", "Q3", "Q4")


def gps_grid(value: float | None, step: float = 0.01) -> float | None:
    """Snap a coordinate to the south-west corner of its grid cell."""
    if value is None or math.isnan(value):
        return None
    scale = round(1 / step)
    return round(math.floor(value * scale) / scale, len(str(scale)) - 1)


def on_grid(value: float, step: float = 0.01, tolerance: float = 1e-9) -> bool:
    """True when ``value`` is a multiple of ``step`` (within float tolerance)."""
    scaled = value * round(1 / step)
    return abs(scaled - round(scaled)) < tolerance


def age_bin(age: int | None, width: int = 5) -> str | None:
    """``37 -> '35-39'``."""
    if age is None:
        return None
    lo = (int(age) // width) * width
    return f"{lo}-{lo + width - 1}"


def birth_date_bin(value: date | str | None, width: int = 5) -> str | None:
    """A birth date to a bin of birth years: ``1987-06-02 -> '1985-1989'``."""
    if value is None:
        return None
    year = value.year if isinstance(value, date) else _year(value)
    return None if year is None else age_bin(year, width)


def _year(text: str) -> int | None:
    head = text[:4]
    return int(head) if len(head) == 4 and head.isdigit() else None


def hour(value: datetime | str | None) -> datetime | None:
    """Truncate a timestamp to its hour, in UTC."""
    if value is None:
        return None
    ts = datetime.fromisoformat(value) if isinstance(value, str) else value
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return ts.replace(minute=0, second=0, microsecond=0)


def address_city_region(value: str | None) -> str | None:
    """``'12 Elm Rd, Dayton, OH 45402' -> 'Dayton, OH'``; None when it cannot be read."""
    if value is None:
        return None
    m = _ADDRESS_RE.match(value)
    return f"{m.group(1)}, {m.group(2)}" if m else None


def quartile_bounds(values: Sequence[float]) -> tuple[float, float, float]:
    """The 25th, 50th and 75th percentiles, linearly interpolated."""
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    if not xs:
        return (math.nan, math.nan, math.nan)

    def at(q: float) -> float:
        pos = q * (len(xs) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    return (at(0.25), at(0.5), at(0.75))


def quartile(value: float | None, bounds: tuple[float, float, float]) -> str | None:
    """The quartile label of ``value`` given the dataset's bounds (upper bound inclusive)."""
    if value is None or math.isnan(value):
        return None
    return QUARTILES[sum(1 for b in bounds if value > b)]
