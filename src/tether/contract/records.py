"""Records as the contract defines them (sections 2 and 3), and their decoding.

``split_record`` separates payload and signature; ``decode_payload`` turns a JSON
payload, a binary frame or a class's legacy JSON into an :class:`Envelope`. Each
refuses bad input with :class:`RecordRejectedError` and a contract code, and
nothing else escapes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tether.classes.catalog import ClassRuntime
from tether.contract.codes import (
    DEVICE_MISMATCH,
    MALFORMED,
    MAX_RECORD_BYTES,
    SIGNATURE_BYTES,
    TOO_LARGE,
)
from tether.errors import RecordRejectedError

UINT64 = 1 << 64
# A device time before this (2015-01-01) or more than a day past arrival is not believed.
EARLIEST_TS_MS = 1_420_070_400_000
LATEST_AHEAD_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded record in the contract's JSON form."""

    seq: int | None
    ts_ms: int | None
    type: str
    v: int
    body: dict[str, Any]
    dedupe_key: str


def split_record(data: bytes, signed: bool) -> tuple[bytes, bytes | None]:
    """``record = payload ‖ sig`` for signed classes, ``record = payload`` otherwise."""
    if len(data) > MAX_RECORD_BYTES:
        raise RecordRejectedError(TOO_LARGE, f"{len(data)} bytes; a record is at most 16 KiB")
    if not signed:
        if not data:
            raise RecordRejectedError(MALFORMED, "empty record")
        return data, None
    if len(data) <= SIGNATURE_BYTES:
        raise RecordRejectedError(
            MALFORMED, f"{len(data)} bytes is too short for a payload and a 64-byte signature"
        )
    return data[:-SIGNATURE_BYTES], data[-SIGNATURE_BYTES:]


def _int(value: Any, name: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value < high:
        raise RecordRejectedError(MALFORMED, f"{name} must be an integer in [{low}, {high})")
    return value


def _json(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordRejectedError(MALFORMED, f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise RecordRejectedError(MALFORMED, "the JSON payload is nested too deeply") from None
    if not isinstance(obj, dict):
        raise RecordRejectedError(MALFORMED, "the JSON payload must be an object")
    return obj


def decode_json(payload: bytes, serial: str) -> Envelope:
    """The envelope of contract section 3; its ``device`` must be ``serial``."""
    obj = _json(payload)
    device = obj.get("device")
    if not isinstance(device, str):
        raise RecordRejectedError(MALFORMED, "device must be a string")
    if device != serial:
        raise RecordRejectedError(DEVICE_MISMATCH, f"payload names {device!r}, not {serial!r}")
    seq = _int(obj.get("seq"), "seq", 0, UINT64)
    ts = _int(obj.get("ts"), "ts", -(1 << 63), 1 << 63)
    kind, v, body = obj.get("type"), obj.get("v"), obj.get("body")
    if not isinstance(kind, str) or not kind:
        raise RecordRejectedError(MALFORMED, "type must be a non-empty string")
    v = _int(v, "v", 1, 1 << 31)
    if not isinstance(body, dict):
        raise RecordRejectedError(MALFORMED, "body must be a JSON object")
    return Envelope(seq, ts, kind, v, body, str(seq))


def decode_legacy(payload: bytes, serial: str, runtime: ClassRuntime) -> Envelope:
    """Flat JSON from firmware in the field, mapped by the class's legacy section."""
    legacy = runtime.pack.legacy
    if legacy is None:
        raise RecordRejectedError(MALFORMED, f"class {runtime.name} has no legacy payloads")
    obj = _json(payload)
    key = obj.pop(legacy.key_field, None)
    if not isinstance(key, str | int) or isinstance(key, bool) or str(key) == "":
        raise RecordRejectedError(MALFORMED, f"{legacy.key_field} must be a string or integer")
    if legacy.device_field is not None and legacy.device_field in obj:
        device = obj.pop(legacy.device_field)
        if device != serial:
            raise RecordRejectedError(DEVICE_MISMATCH, f"payload names {device!r}, not {serial!r}")
    ts = None
    if legacy.ts_field is not None and legacy.ts_field in obj:
        ts = _int(obj.pop(legacy.ts_field), legacy.ts_field, -(1 << 63), 1 << 63)
    return Envelope(None, ts, legacy.type, legacy.v, obj, f"{legacy.key_field}:{key}")


def decode_payload(payload: bytes, serial: str, runtime: ClassRuntime) -> Envelope:
    """JSON (first byte ``{``) or one of the class's binary frames."""
    if payload[:1] == b"{":
        return decode_json(payload, serial)
    expanded = runtime.frames.decode(payload)
    return Envelope(
        expanded.seq, expanded.ts_ms, expanded.type, expanded.v, expanded.body, str(expanded.seq)
    )


def corrected_time(ts_ms: int | None, arrival_ms: int) -> tuple[int, bool]:
    """The time to file an event under, and whether the device's own was replaced."""
    if ts_ms is None or ts_ms < EARLIEST_TS_MS or ts_ms > arrival_ms + LATEST_AHEAD_MS:
        return arrival_ms, True
    return ts_ms, False
