"""A quick acceptance check for event bodies, compiled beside each JSON Schema.

fastjsonschema decides a body: valid, or refused with its message. Most bodies
are plainly valid, and a check compiled from the schema for exactly Python's
JSON types (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``)
can say so in a fraction of the time. The check passes only bodies the full
validator accepts unchanged; any other body (a refusal, an integral float for
an integer, a ``tuple``) goes on to the full validator, which accepts or refuses
as ever. Schemas using anything beyond the subset below get no quick check:
their bodies always go to the full validator. A property test holds the quick
checks to that on random schemas and bodies.

The subset: ``type`` (one or a list), ``enum`` of strings or of integers,
``properties``, ``required``, ``minimum``, ``maximum``, ``minLength``,
``maxLength``, ``items`` (one schema), ``minItems``, ``maxItems``, and the
annotations ``title``, ``description``, ``$comment`` and ``examples``. (``default``
is left out on purpose: fastjsonschema writes defaults into the body.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Validator = Callable[[Any], Any]

_ANNOTATIONS = {"title", "description", "$comment", "examples"}
_TYPED = {
    "properties": "object",
    "required": "object",
    "minimum": "number",
    "maximum": "number",
    "minLength": "string",
    "maxLength": "string",
    "items": "array",
    "minItems": "array",
    "maxItems": "array",
}
_SUPPORTED = {"type", "enum", *_TYPED, *_ANNOTATIONS}
# JSON Schema types to the exact Python types the check accepts for them.
_PYTHON = {
    "object": ("dict",),
    "array": ("list",),
    "string": ("str",),
    "integer": ("int",),  # a bool is not one; an integral float is left to the full validator
    "number": ("int", "float"),
    "boolean": ("bool",),
    "null": ("NoneType",),
}


class _Unsupported(Exception):
    pass


def _number(value: Any) -> bool:
    return type(value) in (int, float)


class _Compiler:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {"NoneType": type(None), "MISSING": object()}
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def number(self, value: int | float) -> str:
        """A bound as a literal when its repr reads back as itself, else a constant."""
        text = repr(value)
        return text if text not in ("inf", "-inf", "nan") else self.const(value)

    def const(self, value: Any) -> str:
        name = self.name("c")
        self.namespace[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def schema(self, schema: Any, x: str, depth: int) -> None:
        """Lines that hand the body to the full validator unless local ``x`` surely passes."""
        if schema is True or schema == {}:
            return
        if not isinstance(schema, dict) or set(schema) - _SUPPORTED:
            raise _Unsupported
        if "enum" in schema:
            self.enum(schema["enum"], x, depth)
        typed = [k for k in schema if k in _TYPED]
        kinds = schema.get("type")
        if kinds is None:
            if typed:
                raise _Unsupported  # keywords for a type, but any type allowed
            return
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(kinds, list) or not kinds or any(k not in _PYTHON for k in kinds):
            raise _Unsupported
        python = sorted({p for k in kinds for p in _PYTHON[k]})
        t = self.name("t")
        self.emit(depth, f"{t} = type({x})")
        self.emit(depth, f"if {' and '.join(f'{t} is not {p}' for p in python)}:")
        self.emit(depth + 1, "return FULL(body)")
        if "minimum" in schema or "maximum" in schema:
            self.numbers(schema, x, t, python, depth)
        if "minLength" in schema or "maxLength" in schema:
            self.lengths(schema, x, t, python, depth)
        if {"items", "minItems", "maxItems"} & set(schema) and "list" in python:
            self.array(schema, x, t, depth)
        if {"properties", "required"} & set(schema) and "dict" in python:
            self.object(schema, x, t, depth)

    def enum(self, values: Any, x: str, depth: int) -> None:
        if not isinstance(values, list) or not values:
            raise _Unsupported
        if all(type(v) is str for v in values):
            kind = "str"
        elif all(type(v) is int for v in values):
            kind = "int"
        else:
            raise _Unsupported
        self.emit(
            depth, f"if type({x}) is not {kind} or {x} not in {self.const(frozenset(values))}:"
        )
        self.emit(depth + 1, "return FULL(body)")

    def numbers(
        self, schema: dict[str, Any], x: str, t: str, python: list[str], depth: int
    ) -> None:
        bounds = []
        for keyword, op in (("minimum", "<"), ("maximum", ">")):
            if keyword in schema:
                if not _number(schema[keyword]):
                    raise _Unsupported
                bounds.append(f"{x} {op} {self.number(schema[keyword])}")
        numeric = [p for p in python if p in ("int", "float")]
        if not numeric:
            return
        guard = "" if numeric == python else f"({' or '.join(f'{t} is {p}' for p in numeric)}) and "
        self.emit(depth, f"if {guard}({' or '.join(bounds)}):")
        self.emit(depth + 1, "return FULL(body)")

    def lengths(
        self, schema: dict[str, Any], x: str, t: str, python: list[str], depth: int
    ) -> None:
        bounds = []
        for keyword, op in (("minLength", "<"), ("maxLength", ">")):
            if keyword in schema:
                if type(schema[keyword]) is not int:
                    raise _Unsupported
                bounds.append(f"len({x}) {op} {schema[keyword]}")
        if "str" not in python:
            return
        guard = "" if python == ["str"] else f"{t} is str and "
        self.emit(depth, f"if {guard}({' or '.join(bounds)}):")
        self.emit(depth + 1, "return FULL(body)")

    def array(self, schema: dict[str, Any], x: str, t: str, depth: int) -> None:
        self.emit(depth, f"if {t} is list:")
        inner = depth + 1
        bounds = []
        for keyword, op in (("minItems", "<"), ("maxItems", ">")):
            if keyword in schema:
                if type(schema[keyword]) is not int:
                    raise _Unsupported
                bounds.append(f"len({x}) {op} {schema[keyword]}")
        if bounds:
            self.emit(inner, f"if {' or '.join(bounds)}:")
            self.emit(inner + 1, "return FULL(body)")
        items = schema.get("items", {})
        fixed = schema.get("minItems")
        if (
            isinstance(items, dict)
            and type(fixed) is int
            and fixed == schema.get("maxItems")
            and 0 < fixed <= 8
        ):
            for k in range(fixed):  # a fixed length, checked above: each item in turn
                item = self.name("i")
                self.emit(inner, f"{item} = {x}[{k}]")
                self.schema(items, item, inner)
        elif isinstance(items, dict):
            item = self.name("i")
            self.emit(inner, f"for {item} in {x}:")
            self.schema(items, item, inner + 1)
            self.emit(inner + 1, "pass")
        elif items is not True:
            raise _Unsupported  # a list of schemas, or false
        self.emit(inner, "pass")

    def object(self, schema: dict[str, Any], x: str, t: str, depth: int) -> None:
        self.emit(depth, f"if {t} is dict:")
        inner = depth + 1
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise _Unsupported
        if required:
            self.emit(inner, f"if not {x}.keys() >= {self.const(frozenset(required))}:")
            self.emit(inner + 1, "return FULL(body)")
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise _Unsupported
        for prop, sub in properties.items():
            if not isinstance(prop, str):
                raise _Unsupported
            if sub is True or sub == {}:
                continue
            value = self.name("v")
            if prop in required:
                self.emit(inner, f"{value} = {x}[{self.const(prop)}]")
                self.schema(sub, value, inner)
            else:
                self.emit(inner, f"{value} = {x}.get({self.const(prop)}, MISSING)")
                self.emit(inner, f"if {value} is not MISSING:")
                self.schema(sub, value, inner + 1)
                self.emit(inner + 1, "pass")
        self.emit(inner, "pass")


def with_quick_check(schema: Any, full: Validator) -> Validator:
    """``full`` (the schema's fastjsonschema validator) behind the schema's quick check.

    The result validates as ``full`` does: it returns the body when the quick check
    passes it, and otherwise whatever ``full`` returns or raises. A schema outside
    the subset gets ``full`` itself.
    """
    compiler = _Compiler()
    try:
        compiler.schema(schema, "body", 1)
    except _Unsupported:
        return full
    compiler.namespace["FULL"] = full
    source = "\n".join(["def validate(body):", *compiler.lines, "    return body"])
    exec(compile(source, "<body schema, quick check>", "exec"), compiler.namespace)
    validate: Validator = compiler.namespace["validate"]
    return validate
