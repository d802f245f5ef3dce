"""A platform with a tenant and one provisioned device of each shipped class."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.identity.conftest import Clock, open_platform
from tests.platforms import PLATFORM_ENGINES, platform_data_dir
from tether.devices.secure_element import SecureElement
from tether.gate import Submission
from tether.platform import Platform


@dataclass
class Device:
    serial: str
    element: SecureElement

    def record(
        self,
        seq: int,
        type_: str,
        body: dict[str, object],
        ts: int | None = None,
        v: int = 1,
        signed: bool = True,
    ) -> bytes:
        payload = json.dumps(
            {
                "device": self.serial,
                "seq": seq,
                "ts": 1_790_000_000_000 if ts is None else ts,
                "type": type_,
                "v": v,
                "body": body,
            }
        ).encode()
        return payload + self.element.sign(payload) if signed else payload

    def frame(self, frame: bytes) -> bytes:
        return frame + self.element.sign(frame)


def provision(p: Platform, device_class: str, hw: str = "A", tenant: str = "acme") -> Device:
    serial = p.provisioner.provision(p.secure_elements, tenant, device_class, hw, 1)[0].serial
    return Device(serial, p.secure_elements.open(serial))


def submit(
    serial: str,
    data: bytes,
    door: str = "direct",
    arrival: int = 1_790_000_100_000,
    account: str | None = None,
) -> Submission:
    return Submission(serial, data, door, arrival, account)


@pytest.fixture
def clock() -> Clock:
    return Clock(1_790_000_100.0)


@pytest.fixture(params=PLATFORM_ENGINES)
def platform(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Platform]:
    with platform_data_dir(request, tmp_path / "tether") as data_dir:
        p = open_platform(data_dir, clock)
        p.authority.init_tenant("acme")
        yield p
        p.close()
