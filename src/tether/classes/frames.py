"""Binary frames, decoded by the layouts their class pack declares (contract section 4).

All multi-byte fields are little-endian. A frame expands to the JSON form of
contract section 3: ``seq`` and ``ts`` go to the envelope, every other visible
field to the body. Bytes no field covers must be zero. Anything else a frame
can get wrong raises :class:`RecordRejectedError` with ``malformed`` (wrong
length, reserved bits or padding set, a fixed field with another value) or
``unknown_type`` (a type byte or case the pack does not declare).

Each layout (a frame, or a frame's case) is read two ways that give the same
result: field by field, as the pack states it (``decode_plain``, the reference),
and by a decoder compiled from the layout when the pack loads: one
``struct.Struct`` unpacks every field at once, then the checks run in the same
order with the same messages, and the body is built in one step
(``decode``, what the gate uses).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tether.classes.pack import CaseSpec, FieldSpec, FrameSpec
from tether.contract.codes import MALFORMED, UNKNOWN_TYPE
from tether.contract.jsonform import plain
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
# What the gate reads from a frame: (seq, ts, event type, v, body, plain), plain
# telling that every value is plain JSON (tether.contract.jsonform): a compiled
# layout's values are integers, booleans, None and hex strings, and its pack's
# ``set`` values are checked when it compiles.
Parts = tuple[Any, Any, str, int, dict[str, Any], bool]
# A compiled layout: the frame to its parts.
Compiled = Callable[[bytes], Parts]
# A compiled switch: the frame to the value of its switch field.
Switch = Callable[[bytes], Any]


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


# Raised by compiled decoders, with the plain readers' messages.
def _wrong_length(spec: FrameSpec, frame: bytes) -> RecordRejectedError:
    return RecordRejectedError(
        MALFORMED, f"frame 0x{spec.type_byte:02x} is {spec.length} bytes, got {len(frame)}"
    )


def _reserved_bits(name: str, value: int) -> RecordRejectedError:
    return RecordRejectedError(MALFORMED, f"{name}: reserved bits set in 0x{value:02x}")


def _not_equal(name: str, equals: int, value: Any) -> RecordRejectedError:
    return RecordRejectedError(MALFORMED, f"{name} must be {equals}, got {value}")


def _padding_set(frame: bytes, padding: tuple[int, ...]) -> RecordRejectedError:
    first = next(i for i in padding if frame[i])
    return RecordRejectedError(MALFORMED, f"padding byte {first} is not zero")


class _Source:
    """The source of one compiled decoder; constants go to its namespace, not its text."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "_wrong_length": _wrong_length,
            "_reserved_bits": _reserved_bits,
            "_not_equal": _not_equal,
            "_padding_set": _padding_set,
            "_int_from_bytes": int.from_bytes,
        }

    def const(self, value: Any) -> str:
        name = f"c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def compile(self, name: str) -> Any:
        code = "\n".join([f"def {name}(frame):", *("    " + line for line in self.lines)])
        exec(compile(code, f"<frame layout {name}>", "exec"), self.namespace)
        return self.namespace[name]


def _check_length(src: _Source, spec: FrameSpec) -> None:
    src.lines.append(f"if len(frame) != {spec.length}:")
    src.lines.append(f"    raise _wrong_length({src.const(spec)}, frame)")


def _compile_reads(
    src: _Source, fields: list[FieldSpec]
) -> tuple[dict[str, str], list[str]] | None:
    """Source lines reading ``fields`` in the plain readers' order, into locals.

    Returns each value name's local (its last value) and the names in the order
    they first appear, or None for a layout the compiler leaves to the plain readers.
    """
    ordered = sorted(fields, key=lambda f: f.kind != "bits")
    by_offset = sorted(fields, key=lambda f: f.offset)
    fmt, at, index, slots = "<", 0, 0, {}
    for f in by_offset:
        if f.offset < at:
            return None  # overlapping fields: the pack's validation forbids them
        fmt += "x" * (f.offset - at)
        if f.kind == "bytes":
            fmt += f"{f.size}s"
            slots[id(f)] = [index]
            index += 1
        else:
            fmt += _FORMATS[f.kind] * f.count
            slots[id(f)] = list(range(index, index + f.count))
            index += f.count
        at = f.offset + f.width
    if index == 0:
        return None
    names = [f"t{i}" for i in range(index)]
    unpack = src.const(struct.Struct(fmt).unpack_from)
    src.lines.append(f"{', '.join(names)}{',' if index == 1 else ''} = {unpack}(frame)")
    local_of: dict[str, str] = {}
    order: list[str] = []
    counter = 0

    def assign(value_name: str, expression: str) -> None:
        nonlocal counter
        local = f"v{counter}"
        counter += 1
        src.lines.append(f"{local} = {expression}")
        if value_name not in local_of:
            order.append(value_name)
        local_of[value_name] = local

    for f in ordered:
        raw = [names[i] for i in slots[id(f)]]
        if f.kind == "bytes":
            assign(f.name, f"{raw[0]}.hex()")
            continue
        if f.kind == "bits":
            reserved = 0xFF & ~((1 << len(f.bits)) - 1)
            if reserved:
                src.lines.append(f"if {raw[0]} & {reserved}:")
                src.lines.append(f"    raise _reserved_bits({src.const(f.name)}, {raw[0]})")
            for i, bit in enumerate(f.bits):
                assign(bit, f"{raw[0]} & {1 << i} != 0")  # bool(value >> i & 1)
            continue
        scaled = [r if f.scale == 1 else f"{r} * {f.scale}" for r in raw]
        value = f"[{', '.join(scaled)}]" if f.count > 1 else scaled[0]
        local = f"n{counter}"
        src.lines.append(f"{local} = {value}")
        if f.equals is not None:
            src.lines.append(f"if {local} != {f.equals}:")
            src.lines.append(f"    raise _not_equal({src.const(f.name)}, {f.equals}, {local})")
        nulls = []
        if f.null_if_zero:
            nulls.append(f"{local} == 0")
        if f.null_unless is not None:
            other = local_of.get(f.null_unless)
            nulls.append("True" if other is None else f"not {other}")
        if nulls:
            assign(f.name, f"None if {' or '.join(nulls)} else {local}")
        else:
            assign(f.name, local)
    return local_of, order


def _compile_layout(
    spec: FrameSpec,
    fields: list[FieldSpec],
    case_set: dict[str, Any],
    hidden: frozenset[str],
    check_length: bool,
) -> Compiled | None:
    """A decoder of one layout, from frame to (seq, ts, type, v, body).

    A case's layout leaves the frame's length to its switch, checked first.
    """
    src = _Source()
    if check_length:
        _check_length(src, spec)
    reads = _compile_reads(src, fields)
    if reads is None or "seq" not in reads[0]:
        return None
    local_of, order = reads
    padding = tuple(_padding(spec.length, fields))
    if padding:
        mask = sum(0xFF << (8 * i) for i in padding)
        src.lines.append(f'if _int_from_bytes(frame, "little") & {mask}:')
        src.lines.append(f"    raise _padding_set(frame, {src.const(padding)})")
    items = [f"{src.const(k)}: {src.const(v)}" for k, v in case_set.items()]
    items += [f"{src.const(k)}: {local_of[k]}" for k in order if k not in hidden]
    ts = local_of.get("ts", "None")
    kind, v = src.const(spec.event), src.const(spec.v)
    body = f"{{{', '.join(items)}}}"
    src.lines.append(f"return {local_of['seq']}, {ts}, {kind}, {v}, {body}, {plain(case_set)}")
    compiled: Compiled = src.compile(f"frame_{spec.type_byte:02x}")
    return compiled


def _compile_switch(spec: FrameSpec, switch: str) -> Switch | None:
    """A decoder of a frame's base layout that checks it and returns the switch's value."""
    src = _Source()
    _check_length(src, spec)
    reads = _compile_reads(src, spec.fields)
    if reads is None or switch not in reads[0]:
        return None
    src.lines.append(f"return {reads[0][switch]}")
    compiled: Switch = src.compile("switch")
    return compiled


@dataclass(frozen=True)
class _Layout:
    readers: tuple[Reader, ...]
    padding: tuple[int, ...]
    set: dict[str, Any]
    compiled: Compiled | None


class FrameCodec:
    """Decodes one frame type of one class."""

    def __init__(self, spec: FrameSpec) -> None:
        self.spec = spec
        self.hidden = frozenset({*spec.hidden, "seq", "ts"})
        switched = spec.switch is not None
        self._base = self._layout(spec.fields, CaseSpec(), not switched)
        self._cases = {
            k: self._layout(spec.fields + c.fields, c, False) for k, c in spec.cases.items()
        }
        # The compiled decoder of the whole frame type, or None: the plain readers.
        self.read: Compiled = self._compiled_reader() or self._read_plain

    def _layout(self, fields: list[FieldSpec], case: CaseSpec, check_length: bool) -> _Layout:
        # Bits fields are read first so that null_unless can consult them.
        ordered = sorted(fields, key=lambda f: f.kind != "bits")
        return _Layout(
            tuple(_reader(f) for f in ordered),
            tuple(_padding(self.spec.length, fields)),
            dict(case.set),
            _compile_layout(self.spec, fields, dict(case.set), self.hidden, check_length),
        )

    def _compiled_reader(self) -> Compiled | None:
        spec = self.spec
        if spec.switch is None:
            return self._base.compiled
        switch = _compile_switch(spec, spec.switch)
        cases = {k: layout.compiled for k, layout in self._cases.items()}
        if switch is None or any(c is None for c in cases.values()):
            return None
        no_case = self._no_case

        def read_case(frame: bytes) -> Parts:
            value = switch(frame)
            case = cases.get(value)
            if case is None:
                raise no_case(value)
            return case(frame)

        return read_case

    def _no_case(self, value: Any) -> RecordRejectedError:
        spec = self.spec
        return RecordRejectedError(
            UNKNOWN_TYPE, f"frame 0x{spec.type_byte:02x} has no {spec.switch} {value}"
        )

    def _read_plain(self, frame: bytes) -> Parts:
        out = self.decode_plain(frame)
        return out.seq, out.ts_ms, out.type, out.v, out.body, False

    def decode(self, frame: bytes) -> Expanded:
        seq, ts, kind, v, body, _ = self.read(frame)
        return Expanded(seq, ts, kind, v, body)

    def decode_plain(self, frame: bytes) -> Expanded:
        """The frame expanded field by field: the reference the compiled decoders follow."""
        spec = self.spec
        if len(frame) != spec.length:
            raise _wrong_length(spec, frame)
        layout = self._base
        if spec.switch is not None:
            values: dict[str, Any] = {}
            for read in layout.readers:
                read(frame, values)
            case = self._cases.get(values[spec.switch])
            if case is None:
                raise self._no_case(values[spec.switch])
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
        self._readers = {t: codec.read for t, codec in self._codecs.items()}

    def __bool__(self) -> bool:
        return bool(self._codecs)

    def capability(self, type_byte: int) -> str | None:
        codec = self._codecs.get(type_byte)
        return codec.spec.capability if codec else None

    @staticmethod
    def _refusal(frame: bytes) -> RecordRejectedError:
        if not frame:
            return RecordRejectedError(MALFORMED, "empty payload")
        return RecordRejectedError(UNKNOWN_TYPE, f"no frame type 0x{frame[0]:02x} in this class")

    def _codec(self, frame: bytes) -> FrameCodec:
        codec = self._codecs.get(frame[0]) if frame else None
        if codec is None:
            raise self._refusal(frame)
        return codec

    def read(self, frame: bytes) -> Parts:
        """(seq, ts, type, v, body, plain) of a frame, without an :class:`Expanded`."""
        try:
            read = self._readers[frame[0]]
        except (IndexError, KeyError):
            raise self._refusal(frame) from None
        return read(frame)

    def decode(self, frame: bytes) -> Expanded:
        return self._codec(frame).decode(frame)

    def decode_plain(self, frame: bytes) -> Expanded:
        return self._codec(frame).decode_plain(frame)
