from __future__ import annotations

from pathlib import Path

import pytest

from tether.classes import load_catalog
from tether.errors import ClassPackError, NotFoundError

FOURTH = """
name: smart-kettle
description: a kettle on home Wi-Fi
transports: [mqtt]
signed: true
capabilities: [boil-frames-v1]
events:
  boil:
    1:
      type: object
      required: [target_c]
      properties:
        target_c: {type: integer, minimum: 40, maximum: 100}
        keep_warm: {type: boolean}
  hello:
    1: {$ref: hello}
frames:
  - type_byte: 0x41
    event: boil
    v: 1
    length: 12
    capability: boil-frames-v1
    fields:
      - {name: flags, offset: 1, kind: bits, bits: [keep_warm]}
      - {name: seq, offset: 2, kind: u32}
      - {name: ts, offset: 6, kind: u32, scale: 1000}
      - {name: target_c, offset: 10, kind: u8}
"""


def test_the_three_shipped_packs_load() -> None:
    catalog = load_catalog()
    assert catalog.names() == ["oral-care-brush", "power-tool", "retail-cart"]
    brush = catalog.get("oral-care-brush")
    assert brush.pack.signed and brush.pack.transports == ["gateway"]
    assert brush.validator("hello", 1) is not None and brush.validator("session", 2) is None
    tool = catalog.get("power-tool")
    assert not tool.pack.signed and tool.pack.legacy is not None
    assert tool.pack.legacy.topic == "telemetry/{serial}"
    cart = catalog.get("retail-cart")
    assert {
        "scan",
        "session-start",
        "session-end",
        "identify",
        "health",
        "fault",
        "boot",
        "hello",
    } <= set(cart.pack.events)
    with pytest.raises(NotFoundError, match="class_packs"):
        catalog.get("toaster")


def test_a_fourth_class_is_configuration(tmp_path: Path) -> None:
    (tmp_path / "smart-kettle.yaml").write_text(FOURTH)
    catalog = load_catalog([tmp_path])
    kettle = catalog.get("smart-kettle")
    frame = bytes([0x41, 1, 9, 0, 0, 0, 0, 0x5E, 0xD0, 0xB2, 95, 0])
    expanded = kettle.frames.decode(frame)
    assert (expanded.seq, expanded.type, expanded.body) == (
        9,
        "boil",
        {"keep_warm": True, "target_c": 95},
    )
    validate = kettle.validator("boil", 1)
    assert validate is not None
    validate(expanded.body)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.replace("transports: [mqtt]", "transports: [gateway]").replace(
                "signed: true", "signed: false"
            ),
            "unsigned class cannot use the gateway",
        ),
        (lambda t: t.replace("length: 12", "length: 10"), "runs past"),
        (lambda t: t.replace("offset: 10, kind: u8", "offset: 9, kind: u8"), "overlaps"),
        (lambda t: t.replace("{$ref: hello}", "{$ref: nope}"), "not a shared schema"),
        (lambda t: t.replace("event: boil\n", "event: brew\n"), "does not declare"),
        (lambda t: t.replace("minimum: 40", "minimum: forty"), "not a valid JSON Schema"),
        (lambda t: t.replace("signed: true", "signed: maybe"), "signed"),
        (lambda t: t + "\ncolour: red\n", "colour"),
        (lambda t: t.replace("name: smart-kettle", "name: Smart Kettle"), "name"),
        (
            lambda t: t.replace(
                "{name: seq, offset: 2, kind: u32}", "{name: sq, offset: 2, kind: u32}"
            ),
            "no seq field",
        ),
        (lambda t: "[unclosed", "not valid YAML"),
        (lambda t: "- a list", "mapping"),
    ],
)
def test_bad_packs_name_the_file_and_key(tmp_path: Path, change: object, message: str) -> None:
    path = tmp_path / "kettle.yaml"
    path.write_text(change(FOURTH))  # type: ignore[operator]
    with pytest.raises(ClassPackError, match=message) as err:
        load_catalog([tmp_path])
    assert str(path) in str(err.value)


def test_missing_pack_directory(tmp_path: Path) -> None:
    with pytest.raises(ClassPackError, match="does not exist"):
        load_catalog([tmp_path / "nope"])
