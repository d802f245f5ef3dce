"""What simulated devices put on the wire: the contract's records, made on the device side.

Built from the contract (docs/contracts/wire-v1.md, sections 2-5 and 9), not
from the platform's decoders, so a simulated device tests the platform instead
of agreeing with it by construction. Each :class:`Record` also says how the
platform must file it (dedupe key, type, body, device time), which is what the
simulator's ledger expects to find after the run.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from typing import Any

# Binary frames (section 4).
SESSION_FRAME = 0x11
DEVICE_EVENT_FRAME = 0x21
BOND_FRAME = 0x31
DEVICE_EVENT_CODES = {
    "battery_low": 1,
    "head_attached": 2,
    "firmware_updated": 3,
    "unbonded": 4,
    "rolled_back": 5,
}
FRAME_BYTES = 20
CHALLENGE_BYTES = 14
# Section 3: a device time before 2015-01-01 is not believed (clamped, flagged).
EARLIEST_BELIEVED_MS = 1_420_070_400_000
UINT32 = (1 << 32) - 1

Signer = Callable[[bytes], bytes]
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Record:
    """One record a device made: the bytes it sends and how the platform must file it.

    ``data`` is ``payload ‖ signature`` for a signed class (section 2), signed on
    first use: a record the device overwrites before anyone reads it is never
    signed, which keeps long simulated histories cheap.
    """

    __slots__ = (
        "_data",
        "_signer",
        "body",
        "device_ts_ms",
        "key",
        "made_at",
        "payload",
        "seq",
        "type",
    )

    def __init__(
        self,
        key: str,
        seq: int | None,
        type: str,
        device_ts_ms: int | None,
        body: dict[str, Any],
        payload: bytes,
        signer: Signer | None,
        made_at: float,
    ) -> None:
        self.key = key
        self.seq = seq
        self.type = type
        self.device_ts_ms = device_ts_ms
        self.body = body
        self.payload = payload
        self.made_at = made_at
        self._signer = signer
        self._data: bytes | None = None if signer is not None else payload

    @property
    def data(self) -> bytes:
        if self._data is None:
            assert self._signer is not None
            self._data = self.payload + self._signer(self.payload)
        return self._data

    def __repr__(self) -> str:
        return f"Record({self.key!r}, {self.type!r})"


def hello_body(
    fw: str,
    hw: str,
    capabilities: Sequence[str],
    lowest_seq_held: int | None,
    trust_anchors: list[str] | None = None,
) -> dict[str, Any]:
    """A hello's body: firmware, hardware, capabilities, the lowest seq still held, and
    the firmware trust anchors of a device that takes updates."""
    body: dict[str, Any] = {
        "fw": fw,
        "hw": hw,
        "capabilities": list(capabilities),
        "lowest_seq_held": lowest_seq_held,
    }
    if trust_anchors is not None:
        body["trust_anchors"] = trust_anchors
    return body


def json_record(
    serial: str,
    seq: int,
    ts_ms: int,
    type: str,
    body: dict[str, Any],
    signer: Signer | None,
    made_at: float,
    v: int = 1,
) -> Record:
    """The JSON envelope of section 3, signed when the class signs."""
    payload = _compact(
        {"device": serial, "seq": seq, "ts": ts_ms, "type": type, "v": v, "body": body}
    ).encode()
    return Record(str(seq), seq, type, ts_ms, body, payload, signer, made_at)


def legacy_record(
    event_id: str, fields: dict[str, Any], ts_ms: int, serial: str, made_at: float
) -> Record:
    """A starter-kit tool's flat JSON on its legacy topic: unsigned, keyed by ``event_id``."""
    payload = _compact({"event_id": event_id, "device_id": serial, "ts": ts_ms, **fields}).encode()
    return Record(
        f"event_id:{event_id}", None, "telemetry", ts_ms, dict(fields), payload, None, made_at
    )


def session_frame(
    seq: int,
    start_s: int,
    duration_s: int,
    coverage_s: Sequence[int],
    pressure_events: int,
    battery_pct: int,
    head_id: int,
    pressure_alert: bool,
    clock_synced: bool,
    signer: Signer,
    made_at: float,
) -> Record:
    """Session frame v1 (0x11): 20 bytes, little-endian; ``head_id`` 0 means none read."""
    coverage = [max(0, min(255, c)) for c in coverage_s]
    if len(coverage) != 4:
        raise ValueError("a session covers four quadrants")
    flags = (1 if pressure_alert else 0) | (2 if head_id else 0) | (4 if clock_synced else 0)
    start = max(0, min(UINT32, start_s))
    payload = struct.pack(
        "<BBIIH4BBBH",
        SESSION_FRAME,
        flags,
        seq,
        start,
        max(0, min(0xFFFF, duration_s)),
        *coverage,
        max(0, min(255, pressure_events)),
        max(0, min(100, battery_pct)),
        head_id,
    )
    body = {
        "duration_s": max(0, min(0xFFFF, duration_s)),
        "coverage_s": coverage,
        "pressure_events": max(0, min(255, pressure_events)),
        "battery_pct": max(0, min(100, battery_pct)),
        "head_id": head_id or None,
        "pressure_alert": pressure_alert,
    }
    return Record(str(seq), seq, "session", start * 1000, body, payload, signer, made_at)


def device_event_frame(
    seq: int, ts_s: int, event: str, value: int | None, signer: Signer, made_at: float
) -> Record:
    """Device event frame v1 (0x21) for ``battery_low`` (battery) or ``head_attached`` (head id).

    The other codes (firmware, rollback, unbonding) belong to OTA and re-pairing.
    """
    body: dict[str, Any] = {"event": event}
    if event == "battery_low":
        assert value is not None
        extra = struct.pack("<B", value)
        body["battery"] = value
    elif event == "head_attached":
        assert value is not None
        extra = struct.pack("<H", value)
        body["head_id"] = value
    elif event == "unbonded":
        extra = b""
    else:
        raise ValueError(f"the simulated brush does not make {event!r} events")
    start = max(0, min(UINT32, ts_s))
    payload = struct.pack("<BBII", DEVICE_EVENT_FRAME, DEVICE_EVENT_CODES[event], seq, start)
    payload += extra.ljust(10, b"\0")
    return Record(str(seq), seq, "device-event", start * 1000, body, payload, signer, made_at)


def bond_frame(seq: int, challenge: bytes, signer: Signer, made_at: float) -> Record:
    """Bond frame v1 (0x31): the answer to a pairing challenge, made only on a button hold."""
    if len(challenge) != CHALLENGE_BYTES:
        raise ValueError(f"a pairing challenge is {CHALLENGE_BYTES} bytes")
    payload = struct.pack("<BBI", BOND_FRAME, 0, seq) + challenge
    return Record(
        str(seq), seq, "bond", None, {"challenge": challenge.hex()}, payload, signer, made_at
    )
