"""The contract's binary frames (section 4), decoded from the oral-care-brush pack."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.classes import load_catalog
from tether.errors import RecordRejectedError

BRUSH = load_catalog().get("oral-care-brush")


def session(
    flags: int = 0b110,
    seq: int = 1,
    start: int = 1_700_000_000,
    duration: int = 120,
    quadrants: tuple[int, ...] = (30, 31, 29, 30),
    pressure: int = 0,
    battery: int = 80,
    head: int = 0x0102,
) -> bytes:
    return (
        bytes([0x11, flags])
        + struct.pack("<IIH", seq, start, duration)
        + bytes(quadrants)
        + bytes([pressure, battery])
        + struct.pack("<H", head)
    )


def rejected(frame: bytes) -> str:
    with pytest.raises(RecordRejectedError) as err:
        BRUSH.frames.decode(frame)
    return err.value.code


def test_session_frame_expands_to_the_contract_body() -> None:
    out = BRUSH.frames.decode(session(flags=0b111, seq=1180, pressure=3))
    assert (out.type, out.v, out.seq, out.ts_ms) == ("session", 1, 1180, 1_700_000_000_000)
    assert out.body == {
        "duration_s": 120,
        "coverage_s": [30, 31, 29, 30],
        "pressure_events": 3,
        "battery_pct": 80,
        "head_id": 0x0102,
        "pressure_alert": True,
    }


def test_a_session_without_a_head_is_recorded_with_null() -> None:
    assert BRUSH.frames.decode(session(flags=0b100, head=0x0102)).body["head_id"] is None
    assert BRUSH.frames.decode(session(flags=0b110, head=0)).body["head_id"] is None


@pytest.mark.parametrize(
    ("code", "tail", "body"),
    [
        (1, bytes([14]), {"event": "battery_low", "battery": 14}),
        (2, struct.pack("<H", 777), {"event": "head_attached", "head_id": 777}),
        (3, bytes([1, 4, 2]), {"event": "firmware_updated", "major": 1, "minor": 4, "patch": 2}),
        (4, b"", {"event": "unbonded"}),
        (
            5,
            bytes([1, 5, 0, 1, 4, 2]),
            {
                "event": "rolled_back",
                "from_major": 1,
                "from_minor": 5,
                "from_patch": 0,
                "to_major": 1,
                "to_minor": 4,
                "to_patch": 2,
            },
        ),
    ],
)
def test_device_event_frames(code: int, tail: bytes, body: dict[str, object]) -> None:
    frame = bytes([0x21, code]) + struct.pack("<II", 42, 1_700_000_100) + tail.ljust(10, b"\0")
    out = BRUSH.frames.decode(frame)
    assert (out.type, out.seq, out.ts_ms, out.body) == ("device-event", 42, 1_700_000_100_000, body)


def test_bond_frame_carries_the_challenge() -> None:
    frame = bytes([0x31, 0]) + struct.pack("<I", 77) + bytes(range(1, 15))
    out = BRUSH.frames.decode(frame)
    assert (out.type, out.seq, out.ts_ms) == ("bond", 77, None)
    assert out.body == {"challenge": bytes(range(1, 15)).hex()}


def test_malformed_frames() -> None:
    assert rejected(session()[:19]) == "malformed"
    assert rejected(session() + b"\0") == "malformed"
    assert rejected(session(flags=0b1000)) == "malformed"  # reserved flag bit
    assert rejected(bytes([0x31, 1]) + bytes(18)) == "malformed"  # bond flags must be 0
    padded = bytes([0x21, 1]) + struct.pack("<II", 1, 1) + bytes([5, 0, 9]) + bytes(7)
    assert rejected(padded) == "malformed"  # padding after the battery byte
    assert rejected(bytes([0x21, 9]) + bytes(18)) == "unknown_type"
    assert rejected(bytes([0x7F]) + bytes(19)) == "unknown_type"
    assert rejected(b"") == "malformed"


@settings(max_examples=3000, deadline=None)
@given(st.binary(min_size=0, max_size=64))
def test_fuzzed_frames_only_ever_raise_the_typed_rejection(data: bytes) -> None:
    try:
        out = BRUSH.frames.decode(data)
    except RecordRejectedError as exc:
        assert exc.code in {"malformed", "unknown_type"}
    else:
        assert len(data) == 20 and 0 <= out.seq < 2**32


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from([0x11, 0x21, 0x31]), st.binary(min_size=19, max_size=19))
def test_fuzzed_frames_with_valid_type_bytes(first: int, rest: bytes) -> None:
    try:
        BRUSH.frames.decode(bytes([first]) + rest)
    except RecordRejectedError as exc:
        assert exc.code in {"malformed", "unknown_type"}
