"""A fourth device class added as configuration only: a YAML pack in a directory.

Nothing in tether's code knows the smart kettle. Its pack, passed through the
``class_packs`` setting, declares its transport, its signed JSON and binary
frame, its event types and capabilities; the kettle is then provisioned, its
signed frames and JSON records are accepted through the gate (in process and
over the real MQTT front door) and land in the telemetry store, and a type its
pack does not declare is refused.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.gate.conftest import Device
from tests.identity.conftest import Clock, open_platform
from tests.mqtt.helpers import Session, TlsFiles
from tether.gate.submission import DIRECT, MQTT, Submission
from tether.platform import Platform
from tether.runtime import Runtime
from tether.testing import free_port

KETTLE = """
# A kettle on home Wi-Fi: MQTT with mutual TLS, every record signed.
name: smart-kettle
description: Wi-Fi kettle, MQTT, signed JSON and compact boil frames
transports: [mqtt]
signed: true
site_field: room
capabilities: [boil-frames-v1, descale-alerts-v1]
health_fields: [scale_pct]
retention_days: 90
events:
  boil:
    1:
      type: object
      required: [target_c]
      properties:
        target_c: {type: integer, minimum: 40, maximum: 100}
        keep_warm: {type: boolean}
        room: {type: string, maxLength: 32}
  status:
    1:
      type: object
      required: [water_ml, scale_pct]
      properties:
        water_ml: {type: integer, minimum: 0, maximum: 2000}
        scale_pct: {type: integer, minimum: 0, maximum: 100}
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
NOW_S = 1_790_000_100
TS_S = NOW_S - 3600


@pytest.fixture
def pack_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "packs"
    directory.mkdir()
    (directory / "smart-kettle.yaml").write_text(KETTLE)
    return directory


def boil_frame(seq: int, target: int, keep_warm: bool, ts_s: int = TS_S) -> bytes:
    return bytes([0x41, int(keep_warm)]) + struct.pack("<II", seq, ts_s) + bytes([target, 0])


def kettle(platform: Platform) -> Device:
    serial = platform.provisioner.provision(
        platform.secure_elements, "acme", "smart-kettle", "K1", 1
    )[0].serial
    return Device(serial, platform.secure_elements.open(serial))


def test_the_kettle_pack_works_through_the_gate(tmp_path: Path, pack_dir: Path) -> None:
    p = open_platform(tmp_path / "t", Clock(NOW_S), class_packs=[str(pack_dir)])
    try:
        p.authority.init_tenant("acme")
        assert p.catalog.names() == ["oral-care-brush", "power-tool", "retail-cart", "smart-kettle"]
        k = kettle(p)
        assert p.registry.find_device(k.serial) is not None
        ts = TS_S * 1000
        hello = k.record(
            1, "hello", {"fw": "0.9.1", "capabilities": ["boil-frames-v1", "espresso-v2"]}, ts
        )
        frame = k.frame(boil_frame(2, 95, keep_warm=True))
        status = k.record(3, "status", {"water_ml": 1200, "scale_pct": 7, "lid": "closed"}, ts)
        json_boil = k.record(4, "boil", {"target_c": 80, "room": "kitchen"}, ts)
        forged = bytearray(k.frame(boil_frame(5, 70, keep_warm=False)))
        forged[10] ^= 0x01  # 70 -> 71 degrees: the signature no longer covers it
        records = [
            (hello, MQTT),
            (frame, MQTT),
            (status, MQTT),
            (json_boil, MQTT),
            (frame, MQTT),  # redelivered
            (bytes(forged), MQTT),
            (k.record(6, "brew", {"cups": 2}, ts), MQTT),  # not in its pack
            (k.record(7, "boil", {"target_c": 30}, ts), MQTT),  # below its schema's minimum
            (k.frame(bytes([0x42]) + bytes(11)), MQTT),  # no such frame in its pack
            (k.frame(boil_frame(9, 90, keep_warm=False)[:11]), MQTT),  # a byte short
            (k.record(8, "status", {"water_ml": 1, "scale_pct": 1}, ts), DIRECT),  # MQTT only
        ]
        arrival = NOW_S * 1000
        outcomes = p.gate.process([Submission(k.serial, d, door, arrival) for d, door in records])
        assert [(o.seq, o.outcome, o.code) for o in outcomes] == [
            (1, "accepted", None),
            (2, "accepted", None),
            (3, "accepted", None),
            (4, "accepted", None),
            (2, "duplicate", None),
            (None, "rejected", "bad_signature"),
            (6, "rejected", "unknown_type"),
            (7, "rejected", "schema_invalid"),
            (None, "rejected", "unknown_type"),
            (None, "rejected", "malformed"),
            (None, "rejected", "malformed"),
        ]
        p.projector.drain()
        stored = {e.seq: e for e in p.telemetry.latest(k.serial, 100)}
        assert p.telemetry.seqs(k.serial) == [1, 2, 3, 4] and len(stored) == 4
        assert (stored[2].type, stored[2].body) == ("boil", {"keep_warm": True, "target_c": 95})
        assert stored[2].device_ts == ts and not stored[2].clock_corrected
        assert stored[3].body == {"water_ml": 1200, "scale_pct": 7, "lid": "closed"}
        assert stored[4].site == "kitchen"  # the pack's site field
        assert {e.device_class for e in stored.values()} == {"smart-kettle"}
        state = p.device_state.get(k.serial)
        assert state is not None and state.agreed == ["boil-frames-v1"]
    finally:
        p.close()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def mqtt_platform(tmp_path: Path, pack_dir: Path) -> Iterator[Platform]:
    p = open_platform(
        tmp_path / "t",
        class_packs=[str(pack_dir)],
        mqtt={"port": free_port(), "internal_port": free_port()},
    )
    p.authority.init_tenant("acme")
    yield p
    p.close()


@pytest.mark.engine("mosquitto")
def test_the_kettle_pack_works_over_the_mqtt_front_door(
    mqtt_platform: Platform, tmp_path: Path
) -> None:
    p = mqtt_platform
    runtime = Runtime(p, mqtt=True)
    runtime.start()
    try:
        assert runtime.front_door is not None
        k = kettle(p)
        cert = tmp_path / "kettle.pem"
        cert.write_text(p.secure_elements.certificate(k.serial))
        key = k.element.export_key_for_tls(tmp_path / "kettle.key")
        session = Session(k.serial, TlsFiles(runtime.front_door.layout.service_ca, cert, key))
        assert session.connect(p.settings.mqtt.port)
        for channel in ("commands", "rejects"):
            session.subscribe(f"tether/v1/{k.serial}/{channel}")
        now_s = int(time.time())
        ts = now_s * 1000
        topic = f"tether/v1/{k.serial}/records"
        for record in (
            k.record(1, "hello", {"fw": "0.9.1", "capabilities": ["descale-alerts-v1"]}, ts),
            k.frame(boil_frame(2, 100, keep_warm=False, ts_s=now_s)),
            k.record(3, "status", {"water_ml": 900, "scale_pct": 40}, ts),
            k.record(4, "brew", {"cups": 1}, ts),
        ):
            assert not session.publish(topic, record).is_failure
        wait_for(lambda: len(p.telemetry.latest(k.serial, 10)) == 3, "three kettle events")
        replies: dict[str, dict[str, object]] = {}
        while len(replies) < 2:
            body = json.loads(session.messages.get(timeout=15).payload)
            replies[body.get("type") or body.get("code")] = body
        assert replies["capabilities"] == {"type": "capabilities", "use": ["descale-alerts-v1"]}
        assert replies["unknown_type"]["seq"] == 4
        stored = {e.seq: e for e in p.telemetry.latest(k.serial, 10)}
        assert stored[2].body == {"keep_warm": False, "target_c": 100}
        assert stored[3].type == "status"
        session.close()
    finally:
        runtime.stop()
