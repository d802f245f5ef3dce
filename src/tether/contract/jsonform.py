"""Which decoded JSON values msgspec writes exactly as ``json.dumps`` does.

tether writes JSON as ``json.dumps(..., separators=(",", ":"), sort_keys=True)``
does: ASCII with ``\\u`` escapes. msgspec's encoder with sorted keys writes the
same bytes for JSON's own Python types (``dict`` with ``str`` keys, ``list``,
``str``, ``int``, ``bool``, ``None``, ``float``), except for non-ASCII characters
and DEL (json escapes them; a check on the output catches those), floats below
1e-4 or from 1e16 on (the exponent forms differ), and NaN and the infinities
(msgspec writes ``null``). A value is *plain* when it holds none of the latter
and only the former types.
"""

from __future__ import annotations

from typing import Any


def positional(value: float) -> bool:
    """Whether both encoders write the float ``value`` alike (no exponent, finite)."""
    return value == 0.0 or 1e-4 <= abs(value) < 1e16


def plain_list(items: list[Any]) -> bool:
    for value in items:
        t = type(value)
        if t is str or t is int or t is bool or value is None:
            continue
        if t is float:
            if value == 0.0 or 1e-4 <= abs(value) < 1e16:
                continue
            return False
        if t is dict:
            if plain(value):
                continue
            return False
        if t is list:
            if plain_list(value):
                continue
            return False
        return False
    return True


def plain(obj: dict[Any, Any]) -> bool:
    """Whether the object ``obj`` is plain (see the module's docstring)."""
    for key, value in obj.items():
        if type(key) is not str:
            return False
        t = type(value)
        if t is str or t is int or t is bool or value is None:
            continue
        if t is float:
            if value == 0.0 or 1e-4 <= abs(value) < 1e16:
                continue
            return False
        if t is dict:
            if plain(value):
                continue
            return False
        if t is list:
            if plain_list(value):
                continue
            return False
        return False
    return True
