"""The shape of a class pack, validated when it is loaded.

A pack is a YAML file that declares one device class: how it connects
(``transports``), whether its records are signed, its event types with a JSON
Schema per version, its binary frame layouts, its capabilities, health fields,
session model, retention and, for firmware already in the field, a legacy topic
and payload mapping. ``{$ref: NAME}`` in an event schema refers to a schema every
class shares (``packs/_common.yaml``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal["u8", "u16", "u32", "bits", "bytes"]
Transport = Literal["gateway", "https-direct", "mqtt"]
_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
_FIELD = r"^[a-z_][a-z0-9_]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Model):
    """One field of a binary frame: where it is, how wide, how it maps to JSON."""

    name: str = Field(pattern=_FIELD)
    offset: int = Field(ge=1, le=239)
    kind: Kind
    count: int = Field(default=1, ge=1, le=64, description="an array of this many items")
    size: int | None = Field(default=None, ge=1, le=238, description="width of a bytes field")
    bits: list[str] = Field(default_factory=list, description="names of bits 0.. of a bits field")
    scale: int = Field(default=1, ge=1, description="multiply (seconds to ms: 1000)")
    equals: int | None = None
    null_if_zero: bool = False
    null_unless: str | None = Field(default=None, description="null when this bit is false")

    @model_validator(mode="after")
    def _kind_rules(self) -> FieldSpec:
        if self.kind == "bytes" and self.size is None:
            raise ValueError(f"bytes field {self.name!r} needs a size")
        if self.kind != "bytes" and self.size is not None:
            raise ValueError(f"only bytes fields take a size ({self.name!r} is {self.kind})")
        if self.kind == "bits" and not 1 <= len(self.bits) <= 8:
            raise ValueError(f"bits field {self.name!r} names 1-8 bits")
        if self.kind != "bits" and self.bits:
            raise ValueError(f"only bits fields name bits ({self.name!r} is {self.kind})")
        return self

    @property
    def width(self) -> int:
        unit = {"u8": 1, "bits": 1, "u16": 2, "u32": 4, "bytes": self.size or 0}[self.kind]
        return unit * self.count


class CaseSpec(_Model):
    set: dict[str, Any] = Field(default_factory=dict)
    fields: list[FieldSpec] = Field(default_factory=list)


class FrameSpec(_Model):
    """A binary frame (contract section 4): fixed length, identified by its first byte."""

    type_byte: int = Field(ge=1, le=255)
    event: str = Field(pattern=_NAME)
    v: int = Field(ge=1)
    length: int = Field(ge=2, le=240)
    capability: str | None = None
    fields: list[FieldSpec]
    hidden: list[str] = Field(default_factory=list)
    switch: str | None = None
    cases: dict[int, CaseSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _layout(self) -> FrameSpec:
        names = [f.name for f in self.fields]
        if "seq" not in names:
            raise ValueError(f"frame 0x{self.type_byte:02x} has no seq field")
        layouts = [self.fields + case.fields for case in self.cases.values()] or [self.fields]
        for layout in layouts:
            used: set[int] = set()
            for f in layout:
                span = set(range(f.offset, f.offset + f.width))
                if max(span) >= self.length:
                    raise ValueError(f"field {f.name!r} runs past the frame's {self.length} bytes")
                if used & span:
                    raise ValueError(f"field {f.name!r} overlaps another field")
                used |= span
        if (self.switch is None) != (not self.cases):
            raise ValueError("a frame with cases needs a switch field, and the reverse")
        if self.switch is not None and self.switch not in names:
            raise ValueError(f"switch {self.switch!r} is not a field of the frame")
        return self


class LegacySpec(_Model):
    """Flat JSON published by firmware in the field on a class's legacy topic."""

    topic: str
    type: str = Field(pattern=_NAME)
    v: int = Field(ge=1)
    key_field: str = Field(description="the dedupe key these payloads carry instead of seq")
    device_field: str | None = None
    ts_field: str | None = None

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if value.count("{serial}") != 1 or re.search(r"[#+]", value):
            raise ValueError("a legacy topic names {serial} once and has no wildcards")
        return value


class ClassPack(_Model):
    """One device class."""

    name: str = Field(pattern=_NAME)
    description: str = ""
    transports: list[Transport] = Field(min_length=1)
    signed: bool
    capabilities: list[str] = Field(default_factory=list)
    health_fields: list[str] = Field(default_factory=list)
    retention_days: int = Field(default=365, ge=1)
    site_field: str | None = None
    sessions: Any = None
    consumables: dict[str, dict[str, str]] = Field(default_factory=dict)
    events: dict[str, dict[int, dict[str, Any]]]
    frames: list[FrameSpec] = Field(default_factory=list)
    legacy: LegacySpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ClassPack:
        if not self.signed and "gateway" in self.transports:
            raise ValueError(
                "an unsigned class cannot use the gateway transport: only classes that connect "
                "directly with mutual TLS may be unsigned (contract section 2)"
            )
        for frame in self.frames:
            if frame.v not in self.events.get(frame.event, {}):
                raise ValueError(
                    f"frame 0x{frame.type_byte:02x} expands to {frame.event} "
                    f"v{frame.v}, which the pack does not declare"
                )
            if frame.capability and frame.capability not in self.capabilities:
                raise ValueError(f"frame capability {frame.capability!r} is not in capabilities")
        bytes_ = [f.type_byte for f in self.frames]
        if len(bytes_) != len(set(bytes_)):
            raise ValueError("two frames share a type byte")
        if self.legacy and self.legacy.v not in self.events.get(self.legacy.type, {}):
            raise ValueError(
                f"legacy payloads expand to {self.legacy.type} v{self.legacy.v}, "
                "which the pack does not declare"
            )
        return self
