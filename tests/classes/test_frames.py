"""The contract's binary frames (section 4), decoded from the oral-care-brush pack."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tether.classes import load_catalog
from tether.classes.frames import FrameSet
from tether.classes.pack import FrameSpec
from tether.contract.jsonform import plain
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


# The compiled decoders against the plain readers, on random layouts and frames.
_NAMES = ["seq", "ts", "a", "b", "flag", "code"]


@st.composite
def _fields(draw: st.DrawFn, start: int, names: list[str]) -> tuple[list[dict[str, Any]], int]:
    fields, at = [], start
    for name in names:
        at += draw(st.integers(0, 2))
        kind = draw(st.sampled_from(["u8", "u16", "u32", "bits", "bytes"]))
        field: dict[str, Any] = {"name": name, "offset": at, "kind": kind}
        if kind == "bits":
            field["bits"] = draw(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=8))
            width = 1
        elif kind == "bytes":
            field["size"] = width = draw(st.integers(1, 4))
        else:
            field["count"] = draw(st.sampled_from([1, 1, 1, 2]))
            field["scale"] = draw(st.sampled_from([1, 1, 1000]))
            field["equals"] = draw(st.sampled_from([None, None, 0, 1]))
            field["null_if_zero"] = draw(st.booleans())
            field["null_unless"] = draw(st.sampled_from([None, None, *_NAMES]))
            width = {"u8": 1, "u16": 2, "u32": 4}[kind] * field["count"]
        fields.append(field)
        at += width
    return fields, at


@st.composite
def _layouts(draw: st.DrawFn) -> FrameSpec:
    names = draw(st.lists(st.sampled_from(_NAMES), min_size=0, max_size=4, unique=True))
    base, end = draw(_fields(1, ["seq", *[n for n in names if n != "seq"]]))
    spec: dict[str, Any] = {"type_byte": 0x42, "event": "e", "v": 1, "fields": base}
    switches = [f["name"] for f in base if f["kind"] != "bytes"]
    if switches and draw(st.booleans()):
        spec["switch"] = draw(st.sampled_from(switches))
        cases = {}
        for value in draw(st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True)):
            extra = draw(st.lists(st.sampled_from(["x", "y", "a"]), max_size=2, unique=True))
            fields, case_end = draw(_fields(end, extra))
            end = max(end, case_end)
            preset = draw(st.dictionaries(st.sampled_from(["event", "a", "x"]), st.integers()))
            cases[value] = {"set": preset, "fields": fields}
        spec["cases"] = cases
    spec["hidden"] = draw(st.lists(st.sampled_from(_NAMES), max_size=3))
    spec["length"] = end + draw(st.integers(0, 3))
    try:
        return FrameSpec.model_validate(spec)
    except ValidationError:
        assume(False)
        raise


def _result(decode: Callable[[bytes], Any], frame: bytes) -> Any:
    try:
        out = decode(frame)
    except RecordRejectedError as exc:
        return ("rejected", exc.code, exc.detail)
    except Exception as exc:  # the plain readers' own failures on odd layouts
        return ("raised", type(exc).__name__)
    return ("read", out.seq, out.ts_ms, out.type, out.v, list(out.body.items()))


@settings(max_examples=250, deadline=None)
@given(_layouts(), st.data())
def test_compiled_frame_decoders_match_the_plain_readers(
    spec: FrameSpec, data: st.DataObject
) -> None:
    frames = FrameSet([spec])
    for _ in range(20):
        length = data.draw(st.sampled_from([spec.length] * 8 + [spec.length - 1, spec.length + 1]))
        frame = bytes([0x42]) + data.draw(
            st.binary(min_size=max(0, length - 1), max_size=max(0, length - 1))
            | st.lists(
                st.sampled_from([0, 0, 0, 1, 2, 255]), min_size=length - 1, max_size=length - 1
            ).map(bytes)
        )
        assert _result(frames.decode, frame) == _result(frames.decode_plain, frame)
        try:
            seq, ts, _, _, body, plain_values = frames.read(frame)
        except Exception:  # refused, or raised as the plain readers do: compared above
            continue
        if plain_values:  # what the decoder vouches for, the walk confirms
            assert plain({"seq": seq, "ts": ts, "body": body})


def test_every_shipped_frame_type_is_compiled() -> None:
    for runtime in load_catalog():
        for codec in runtime.frames._codecs.values():
            assert codec.read != codec._read_plain, (runtime.name, codec.spec.type_byte)
