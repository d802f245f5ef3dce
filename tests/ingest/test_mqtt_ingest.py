"""MQTT ingestion end to end: device -> Mosquitto -> bridge -> raw -> gate -> log -> stores."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.gate.conftest import Device
from tests.mqtt.helpers import Session, TlsFiles
from tests.pg import SETTINGS_FILE
from tests.platforms import PLATFORM_ENGINES, platform_data_dir
from tether.platform import Platform
from tether.runtime import Runtime
from tether.settings import load_settings
from tether.testing import free_port

pytestmark = pytest.mark.engine("mosquitto")
HEALTH = {"battery_pct": 64, "link": "wifi"}


@pytest.fixture(params=PLATFORM_ENGINES)
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    with platform_data_dir(request, tmp_path / "t") as data_dir:
        settings = load_settings(
            {
                "data_dir": str(data_dir),
                "mqtt": {"port": free_port(), "internal_port": free_port()},
            },
            config_file=data_dir / SETTINGS_FILE,
            environ={},
        )
        p = Platform.open(settings)
        p.authority.init_tenant("acme")
        yield p
        p.close()


@pytest.fixture
def runtime(platform: Platform) -> Iterator[Runtime]:
    rt = Runtime(platform, mqtt=True)
    rt.start()
    yield rt
    rt.stop()


def device(platform: Platform, cls: str) -> Device:
    serial = platform.provisioner.provision(platform.secure_elements, "acme", cls, "A", 1)[0].serial
    return Device(serial, platform.secure_elements.open(serial))


def connect(platform: Platform, runtime: Runtime, dev: Device, tmp: Path) -> Session:
    assert runtime.front_door is not None
    cert = tmp / f"{dev.serial}.pem"
    cert.write_text(platform.secure_elements.certificate(dev.serial))
    key = dev.element.export_key_for_tls(tmp / f"{dev.serial}.key")
    session = Session(dev.serial, TlsFiles(runtime.front_door.layout.service_ca, cert, key))
    assert session.connect(platform.settings.mqtt.port)
    return session


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_records_land_once_and_rejects_come_back(
    platform: Platform, runtime: Runtime, tmp_path: Path
) -> None:
    cart = device(platform, "retail-cart")
    session = connect(platform, runtime, cart, tmp_path)
    for channel in ("rejects", "commands"):
        session.subscribe(f"tether/v1/{cart.serial}/{channel}")
    topic = f"tether/v1/{cart.serial}/records"
    hello = cart.record(
        1,
        "hello",
        {
            "fw": "2.0.1",
            "capabilities": ["store-and-forward-v1", "teleport-v9"],
            "lowest_seq_held": 1,
        },
    )
    health = cart.record(2, "health", HEALTH)
    forged = bytearray(cart.record(3, "health", HEALTH))
    forged[-1] ^= 1
    for payload in (hello, health, health, bytes(forged), cart.record(4, "scan", {"qty": 1})):
        assert session.publish(topic, payload).is_failure is False
    wait_for(lambda: platform.telemetry.count() == 2)
    replies = {}
    while len(replies) < 3:
        msg = session.messages.get(timeout=15)
        body = json.loads(msg.payload)
        replies[body.get("code") or body.get("type")] = (msg.topic, body)
    assert replies["capabilities"] == (
        f"tether/v1/{cart.serial}/commands",
        {"type": "capabilities", "use": ["store-and-forward-v1"]},
    )
    assert replies["bad_signature"][1]["seq"] is None
    assert replies["schema_invalid"][1]["seq"] == 4
    assert [e.seq for e in reversed(platform.telemetry.latest(cart.serial, 10))] == [1, 2]
    state = platform.device_state.get(cart.serial)
    assert state is not None and state.fw == "2.0.1"
    session.close()


def test_legacy_tool_telemetry_lands_deduplicated_on_event_id(
    platform: Platform,
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    tool = device(platform, "power-tool")
    session = connect(platform, runtime, tool, tmp_path)
    for event_id in ("e-1", "e-2", "e-1"):
        payload = json.dumps(
            {
                "event_id": event_id,
                "device_id": tool.serial,
                "ts": int(time.time() * 1000),
                "battery_pct": 55,
                "torque_nm": 40,
                "site": "north-yard",
            }
        ).encode()
        session.publish(f"telemetry/{tool.serial}", payload)
    wait_for(lambda: platform.telemetry.count() == 2)
    time.sleep(0.5)
    assert platform.telemetry.count() == 2
    latest = platform.telemetry.latest(tool.serial, 10)
    assert {e.dedupe_key for e in latest} == {"event_id:e-1", "event_id:e-2"}
    assert {e.site for e in latest} == {"north-yard"}
    session.close()
