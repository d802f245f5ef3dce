"""Binary frames, decoded by the layouts their class pack declares (contract section 4).

All multi-byte fields are little-endian. A frame expands to the JSON form of
contract section 3: ``seq`` and ``ts`` go to the envelope, every other visible
field to the body. Bytes no field covers must be zero. Anything else a frame
can get wrong raises :class:`RecordRejectedError` with ``malformed`` (wrong
length, reserved bits or padding set, a fixed field with another value) or
``unknown_type`` (a type byte or case the pack does not declare).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tether.classes.pack import CaseSpec, FieldSpec, FrameSpec
from tether.contract.codes import MALFORMED, UNKNOWN_TYPE
from tether.errors import RecordRejectedError

_FORMATS = {"u8": "B", "u16": "H", "u32": "I", "bits": "B"}


@dataclass(frozen=True, slots=True)
class Expanded:
    """A frame in the JSON form: what the rest of the platform sees."""

    seq: int
    ts_ms: int | None
    type: str
    v: int
    body: dict[str, Any]


Reader = Callable[[bytes, dict[str, Any]], None]


def _reader(spec: FieldSpec) -> Reader:
    """A function that reads one field from a frame into a dict of values."""
    name = spec.name
    if spec.kind == "bytes":
        start, end = spec.offset, spec.offset + (spec.size or 0)

        def read_bytes(frame: bytes, out: dict[str, Any]) -> None:
            out[name] = frame[start:end].hex()

        return read_bytes
    unpack = struct.Struct("<" + _FORMATS[spec.kind] * spec.count).unpack_from
    offset, scale = spec.offset, spec.scale
    if spec.kind == "bits":
        names = list(spec.bits)
        allowed = (1 << len(names)) - 1

        def read_bits(frame: bytes, out: dict[str, Any]) -> None:
            value = frame[offset]
            if value & ~allowed:
                raise RecordRejectedError(MALFORMED, f"{name}: reserved bits set in 0x{value:02x}")
            for i, bit in enumerate(names):
                out[bit] = bool(value >> i & 1)

        return read_bits
    equals, null_if_zero, null_unless = spec.equals, spec.null_if_zero, spec.null_unless
    many = spec.count > 1

    def read_number(frame: bytes, out: dict[str, Any]) -> None:
        values = unpack(frame, offset)
        value: Any = [v * scale for v in values] if many else values[0] * scale
        if equals is not None and value != equals:
            raise RecordRejectedError(MALFORMED, f"{name} must be {equals}, got {value}")
        if (null_if_zero and value == 0) or (null_unless is not None and not out.get(null_unless)):
            value = None
        out[name] = value

    return read_number


def _padding(frame_length: int, fields: list[FieldSpec]) -> list[int]:
    used = {0}
    for f in fields:
        used.update(range(f.offset, f.offset + f.width))
    return [i for i in range(frame_length) if i not in used]


@dataclass(frozen=True)
class _Layout:
    readers: tuple[Reader, ...]
    padding: tuple[int, ...]
    set: dict[str, Any]


class FrameCodec:
    """Decodes one frame type of one class."""

    def __init__(self, spec: FrameSpec) -> None:
        self.spec = spec
        self.hidden = frozenset({*spec.hidden, "seq", "ts"})
        self._base = self._layout(spec.fields, CaseSpec())
        self._cases = {k: self._layout(spec.fields + c.fields, c) for k, c in spec.cases.items()}

    def _layout(self, fields: list[FieldSpec], case: CaseSpec) -> _Layout:
        # Bits fields are read first so that null_unless can consult them.
        ordered = sorted(fields, key=lambda f: f.kind != "bits")
        return _Layout(
            tuple(_reader(f) for f in ordered),
            tuple(_padding(self.spec.length, fields)),
            dict(case.set),
        )

    def decode(self, frame: bytes) -> Expanded:
        spec = self.spec
        if len(frame) != spec.length:
            raise RecordRejectedError(
                MALFORMED, f"frame 0x{spec.type_byte:02x} is {spec.length} bytes, got {len(frame)}"
            )
        layout = self._base
        if spec.switch is not None:
            values: dict[str, Any] = {}
            for read in layout.readers:
                read(frame, values)
            case = self._cases.get(values[spec.switch])
            if case is None:
                raise RecordRejectedError(
                    UNKNOWN_TYPE,
                    f"frame 0x{spec.type_byte:02x} has no {spec.switch} {values[spec.switch]}",
                )
            layout = case
        values = {}
        for read in layout.readers:
            read(frame, values)
        for i in layout.padding:
            if frame[i]:
                raise RecordRejectedError(MALFORMED, f"padding byte {i} is not zero")
        body = dict(layout.set)
        body.update((k, v) for k, v in values.items() if k not in self.hidden)
        ts = values.get("ts")
        return Expanded(values["seq"], ts, spec.event, spec.v, body)


class FrameSet:
    """Every frame type of one class, chosen by the first byte."""

    def __init__(self, specs: list[FrameSpec]) -> None:
        self._codecs = {s.type_byte: FrameCodec(s) for s in specs}

    def __bool__(self) -> bool:
        return bool(self._codecs)

    def capability(self, type_byte: int) -> str | None:
        codec = self._codecs.get(type_byte)
        return codec.spec.capability if codec else None

    def decode(self, frame: bytes) -> Expanded:
        if not frame:
            raise RecordRejectedError(MALFORMED, "empty payload")
        codec = self._codecs.get(frame[0])
        if codec is None:
            raise RecordRejectedError(UNKNOWN_TYPE, f"no frame type 0x{frame[0]:02x} in this class")
        return codec.decode(frame)
