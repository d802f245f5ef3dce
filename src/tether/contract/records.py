"""Records as the contract defines them (sections 2 and 3), and their decoding.

``split_record`` separates payload and signature; ``decode_payload`` turns a JSON
payload, a binary frame or a class's legacy JSON into an :class:`Envelope`. Each
refuses bad input with :class:`RecordRejectedError` and a contract code, and
nothing else escapes them.

A JSON payload is first read by msgspec straight into the envelope's types and
ranges (the fast path). Whatever that does not take (any error, another device's
serial, an integer out of the contract's range) goes to the plain decoder,
``json.loads`` and a check per field, which alone decides the refusal and its
detail. The fast path accepts only payloads the plain decoder accepts, with the
same values (a property test compares the two).
"""

from __future__ import annotations

import itertools
import json
from typing import Annotated, Any

import msgspec

from tether.classes.catalog import ClassRuntime
from tether.contract.codes import (
    DEVICE_MISMATCH,
    MALFORMED,
    MAX_RECORD_BYTES,
    SIGNATURE_BYTES,
    TOO_LARGE,
)
from tether.contract.jsonform import positional
from tether.errors import RecordRejectedError

UINT64 = 1 << 64
# A device time before this (2015-01-01) or more than a day past arrival is not believed.
EARLIEST_TS_MS = 1_420_070_400_000
LATEST_AHEAD_MS = 24 * 3600 * 1000


class Envelope(msgspec.Struct, frozen=True):
    """A decoded record in the contract's JSON form."""

    seq: int | None
    ts_ms: int | None
    type: str
    v: int
    body: dict[str, Any]
    dedupe_key: str


# (seq, ts, type, v, body, plain): a decoded payload before its envelope, as the gate
# reads it; plain: every value is plain JSON (tether.contract.jsonform), as known
# from the decoder that read it (False: not known).
Parts = tuple[Any, Any, str, int, dict[str, Any], bool]


class _Record(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The JSON envelope of contract section 3, as the fast path reads it.

    Other fields go to the plain decoder: msgspec would skip them without reading
    them as strictly as ``json.loads`` does (it does not check their UTF-8).
    """

    device: str
    seq: Annotated[int, msgspec.Meta(ge=0)]  # below 2**64: checked after
    ts: int  # a signed 64-bit integer: checked after
    type: Annotated[str, msgspec.Meta(min_length=1)]
    v: Annotated[int, msgspec.Meta(ge=1, lt=1 << 31)]
    body: dict[str, Any]


# One tick per read_json call and per body float that is not plain (written in
# exponent form, or not finite): a call that saw only its own tick read none. A
# tick from another thread at the same time only costs the check on encoding.
_ticks = itertools.count()


def _float(text: str) -> float:
    value = float(text)  # what json.loads makes of the literal
    if not positional(value):
        next(_ticks)
    return value


_RECORD = msgspec.json.Decoder(_Record, float_hook=_float).decode
_NOT_FAST = (msgspec.MsgspecError, ValueError, RecursionError)


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


def read_json(payload: bytes, serial: str) -> Parts:
    """:func:`decode_json` without the envelope: (seq, ts, type, v, body, plain)."""
    start = next(_ticks)
    try:
        r = _RECORD(payload)
    except _NOT_FAST:
        pass
    else:
        if r.device == serial and r.seq < UINT64 and -(1 << 63) <= r.ts < 1 << 63:
            return r.seq, r.ts, r.type, r.v, r.body, next(_ticks) == start + 1
    env = decode_json_plain(payload, serial)
    return env.seq, env.ts_ms, env.type, env.v, env.body, False


def decode_json(payload: bytes, serial: str) -> Envelope:
    """The envelope of contract section 3; its ``device`` must be ``serial``."""
    seq, ts, kind, v, body, _ = read_json(payload, serial)
    return Envelope(seq, ts, kind, v, body, str(seq))


def decode_json_plain(payload: bytes, serial: str) -> Envelope:
    """:func:`decode_json` by ``json.loads`` and a check per field: the reference."""
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


def read_payload(payload: bytes, serial: str, runtime: ClassRuntime) -> Parts:
    """:func:`decode_payload` without the envelope: (seq, ts, type, v, body, plain).

    The record's dedupe key is ``str(seq)``.
    """
    if payload[:1] == b"{":
        return read_json(payload, serial)
    return runtime.frames.read(payload)


def decode_payload(payload: bytes, serial: str, runtime: ClassRuntime) -> Envelope:
    """JSON (first byte ``{``) or one of the class's binary frames."""
    seq, ts, kind, v, body, _ = read_payload(payload, serial, runtime)
    return Envelope(seq, ts, kind, v, body, str(seq))


def corrected_time(ts_ms: int | None, arrival_ms: int) -> tuple[int, bool]:
    """The time to file an event under, and whether the device's own was replaced."""
    if ts_ms is None or ts_ms < EARLIEST_TS_MS or ts_ms > arrival_ms + LATEST_AHEAD_MS:
        return arrival_ms, True
    return ts_ms, False
