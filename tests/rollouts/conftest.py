"""A platform with a small fleet of carts and a firmware catalog, on each entity engine."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.pg import ENTITY_ENGINES, SETTINGS_FILE, entity_data_dir
from tether.firmware.artifacts import NewImage
from tether.gate.submission import AcceptedEvent
from tether.platform import Platform
from tether.registry.base import CertificateRecord, DeviceRecord
from tether.settings import load_settings

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
ANCHOR = "sha256:" + "ab" * 32
NEW_ANCHOR = "sha256:" + "cd" * 32


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def open_platform(data_dir: Path, clock: Clock) -> Platform:
    settings = load_settings(
        {"data_dir": str(data_dir)}, config_file=data_dir / SETTINGS_FILE, environ={}
    )
    return Platform.open(settings, clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=ENTITY_ENGINES)
def data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    with entity_data_dir(request, tmp_path / "tether") as prepared:
        yield prepared


@pytest.fixture
def sqlite_dir(tmp_path: Path) -> Path:
    return tmp_path / "tether"


def event(serial: str, seq: int, type_: str, at: float, **body: Any) -> AcceptedEvent:
    return AcceptedEvent(
        tenant="acme",
        serial=serial,
        device_class="retail-cart",
        dedupe_key=str(seq),
        seq=seq,
        type=type_,
        v=1,
        device_ts=int(at * 1000),
        ts=int(at * 1000),
        arrival=int(at * 1000),
        clock_corrected=False,
        door="mqtt",
        body=body,
    )


def add_fleet(
    p: Platform,
    devices: Sequence[tuple[str, str, str, str, str]],
    anchors: Sequence[str] = (ANCHOR,),
) -> None:
    """Register ``(serial, tenant, hw, site, fw)`` carts and fold a hello from each."""
    reg = p.registry
    have = {t.name for t in reg.list_tenants()}
    for tenant in sorted({d[1] for d in devices} - have):
        reg.add_tenant(tenant, False, NOW)
    ca = reg.add_ca(None, "device", "test", None, "-", "active", NOW)
    entries = []
    for _i, (serial, tenant, hw, _site, _fw) in enumerate(devices):
        fp = hashlib.sha256(serial.encode()).hexdigest()
        entries.append(
            (
                DeviceRecord(
                    serial, tenant, "retail-cart", hw, "active", fp, NOW + 1e7, "test", NOW
                ),
                CertificateRecord(
                    fp, serial, int(fp[:12], 16), ca.id, NOW + 1e7, "current", "-", NOW
                ),
            )
        )
    reg.add_devices(entries)
    hellos = [
        event(
            serial,
            1,
            "hello",
            NOW - 60,
            fw=fw,
            hw=hw,
            capabilities=[],
            trust_anchors=list(anchors),
            store=site,
        )
        for serial, _tenant, hw, site, fw in devices
    ]
    p.device_state.apply(hellos, {r.name: r for r in p.catalog})


def add_image(p: Platform, tmp_path: Path, version: str = "2.0.0", **changes: Any) -> None:
    image = tmp_path / f"cart-{version}.bin"
    image.write_bytes(os.urandom(4096))
    fields: dict[str, Any] = {
        "path": image,
        "device_class": "retail-cart",
        "version": version,
        "hw": ["A", "B", "C"],
        "security_version": 1,
    }
    fields.update(changes)
    if not p.firmware_custody.exists("platform/firmware-signing"):
        p.firmware_key(create=True)
    p.artifacts.add(NewImage(**fields))


def fleet(
    n: int, hws: str = "ABC", sites: int = 4, fw: str = "1.0.0"
) -> list[tuple[str, str, str, str, str]]:
    return [(f"CART{i:05d}", "acme", hws[i % len(hws)], f"store-{i % sites}", fw) for i in range(n)]
