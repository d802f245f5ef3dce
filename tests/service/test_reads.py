"""What landed, as the operator reads it: events, gaps, rejects (HTTP and CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.gate.conftest import Device, provision, submit
from tests.identity.conftest import Clock, open_platform
from tests.pg import SETTINGS_FILE
from tests.platforms import PLATFORM_ENGINES, platform_data_dir
from tether.cli.main import app as cli
from tether.platform import Platform
from tether.service.app import create_app

AUTH = {"Authorization": "Bearer op"}
HEALTH = {"battery_pct": 50}


@pytest.fixture(params=PLATFORM_ENGINES)
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    with platform_data_dir(request, tmp_path / "t") as data_dir:
        p = open_platform(data_dir, Clock(1_790_000_100.0), admin_token="op")
        p.authority.init_tenant("acme")
        yield p
        p.close()


def landed(p: Platform, cart: Device) -> None:
    hello = cart.record(5, "hello", {"fw": "3.1.0", "capabilities": [], "lowest_seq_held": 3})
    records = [hello] + [cart.record(s, "health", HEALTH) for s in (6, 9)]
    forged = bytearray(cart.record(10, "health", HEALTH))
    forged[-2] ^= 1
    records.append(bytes(forged))
    records.append(cart.record(11, "health", {"battery_pct": "full"}))
    subs = [submit(cart.serial, r, door="mqtt") for r in records]
    p.stream("raw").append([s.entry() for s in subs])  # as the MQTT bridge does
    p.gate.process(subs)
    p.projector.drain()
    p.rejects.run_once()


def test_events_gaps_and_rejects_over_http(platform: Platform) -> None:
    cart = provision(platform, "retail-cart")
    landed(platform, cart)
    client = TestClient(create_app(platform))
    assert client.get(f"/v1/devices/{cart.serial}/events").status_code == 401
    events = client.get(f"/v1/devices/{cart.serial}/events", headers=AUTH).json()["events"]
    assert [e["seq"] for e in events] == [9, 6, 5]
    gaps = client.get(f"/v1/devices/{cart.serial}/gaps", headers=AUTH).json()
    assert gaps["lost"] == [[1, 2]] and gaps["pending"] == [[3, 4], [7, 8]]
    rejects = client.get(f"/v1/devices/{cart.serial}/rejects", headers=AUTH).json()
    assert [r["code"] for r in rejects["rejects"]] == ["schema_invalid", "bad_signature"]
    assert {(c["fw"], c["code"], c["count"]) for c in rejects["counts"]} == {
        ("3.1.0", "schema_invalid", 1),
        ("3.1.0", "bad_signature", 1),
    }
    fleet = client.get("/v1/rejects/counts", headers=AUTH).json()["counts"]
    assert sum(c["count"] for c in fleet) == 2
    assert client.get("/v1/devices/NOPE/events", headers=AUTH).status_code == 404


def test_events_cli(platform: Platform) -> None:
    cart = provision(platform, "retail-cart")
    landed(platform, cart)
    runner = CliRunner()
    data_dir = platform.settings.data_dir
    engines = data_dir / SETTINGS_FILE  # the production engines' URLs, when there are any
    base = ["--data-dir", str(data_dir), *(["--config", str(engines)] if engines.exists() else [])]
    out = runner.invoke(cli, [*base, "events", "tail", cart.serial, "-n", "2"]).output
    assert "health" in out and cart.serial in out
    out = runner.invoke(cli, [*base, "events", "gaps", cart.serial]).output
    assert "2 lost, 4 pending" in out
    out = runner.invoke(cli, [*base, "events", "rejects", cart.serial]).output
    assert "bad_signature" in out and "schema_invalid" in out
    result = runner.invoke(cli, [*base, "replay"])
    assert result.exit_code == 0
    assert "duplicate: 3" in result.output and "rejected: 2" in result.output


def test_fleet_view_over_http(platform: Platform) -> None:
    """/v1/fleet: presence per class and site, outcome totals and rates, gaps, latest rejects."""
    cart = provision(platform, "retail-cart")
    client = TestClient(create_app(platform))
    assert client.get("/v1/fleet", headers={}).status_code == 401
    empty = client.get("/v1/fleet", headers=AUTH).json()
    assert (empty["accepted"], empty["rejected"], empty["presence"]) == (0, 0, [])
    landed(platform, cart)
    again = submit(cart.serial, cart.record(6, "health", HEALTH), door="mqtt")
    assert [o.outcome for o in platform.gate.process([again])] == ["duplicate"]
    start = cart.record(12, "session-start", {"session_id": "s-000001", "store": "north"})
    platform.gate.process([submit(cart.serial, start, door="mqtt")])
    platform.projector.drain()
    fleet = client.get("/v1/fleet", headers=AUTH).json()
    assert (fleet["accepted"], fleet["duplicates"], fleet["rejected"]) == (4, 1, 2)
    assert fleet["rates"]["accepted"] > 0  # since the first look
    assert fleet["presence"] == [
        {"device_class": "retail-cart", "site": "north", "online": 1, "seen": 1}
    ]
    assert (fleet["devices_with_gaps"], fleet["lost"], fleet["pending"]) == (1, 2, 6)
    assert fleet["forgeries_refused"] == 1
    assert fleet["rejects_by_code"] == {"schema_invalid": 1, "bad_signature": 1}
    assert [r["code"] for r in fleet["recent_rejects"]] == ["schema_invalid", "bad_signature"]
