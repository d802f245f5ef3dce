"""What the ingestion tests share: a platform with an MQTT door, devices, waiting."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from tests.gate.conftest import Device
from tests.identity.conftest import Clock
from tests.mqtt.helpers import Session, TlsFiles
from tether.platform import Platform
from tether.runtime import Runtime
from tether.settings import load_settings
from tether.testing import free_port

HEALTH = {"battery_pct": 77}


def open_platform(tmp: Path, clock: Clock, **sections: dict[str, object]) -> Platform:
    """A platform in ``tmp/t`` with free MQTT ports, operator token ``op`` and tenant ``acme``;
    ``sections`` add settings (``ingest={...}``)."""
    settings = load_settings(
        {
            "data_dir": str(tmp / "t"),
            "admin_token": "op",
            "mqtt": {"port": free_port(), "internal_port": free_port()},
            **sections,
        },
        config_file=tmp / "none.toml",
        environ={},
    )
    p = Platform.open(settings, clock=clock)
    p.authority.init_tenant("acme")
    return p


def device(p: Platform, cls: str = "retail-cart") -> Device:
    serial = p.provisioner.provision(p.secure_elements, "acme", cls, "A", 1)[0].serial
    return Device(serial, p.secure_elements.open(serial))


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class MqttDevice:
    def __init__(
        self,
        p: Platform,
        rt: Runtime,
        dev: Device,
        tmp: Path,
        files: tuple[Path, Path] | None = None,
    ) -> None:
        assert rt.front_door is not None
        if files is None:
            cert = tmp / f"{dev.serial}.pem"
            cert.write_text(p.secure_elements.certificate(dev.serial))
            files = (cert, dev.element.export_key_for_tls(tmp / f"{dev.serial}.key"))
        self.dev = dev
        self.session = Session(dev.serial, TlsFiles(rt.front_door.layout.service_ca, *files))
        assert self.session.connect(p.settings.mqtt.port)
        self.session.subscribe(f"tether/v1/{dev.serial}/rejects")
        self.seq = 100

    def send(self, record: bytes) -> None:
        self.session.publish(f"tether/v1/{self.dev.serial}/records", record)

    def good(self) -> None:
        self.seq += 1
        self.send(self.dev.record(self.seq, "health", HEALTH))

    def reject(self, timeout: float = 20.0) -> str:
        msg = self.session.messages.get(timeout=timeout)
        return str(json.loads(msg.payload)["code"])
