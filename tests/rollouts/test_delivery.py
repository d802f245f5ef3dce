"""Delivery: notified MQTT devices get their jobs on their commands topic; apps fetch theirs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.gate.conftest import provision
from tests.pg import SETTINGS_FILE
from tests.rollouts.conftest import (
    ANCHOR,
    NOW,
    Clock,
    add_fleet,
    add_image,
    event,
    fleet,
    open_platform,
)
from tether.cli.main import app as cli
from tether.firmware.jobs import read_job
from tether.gate.submission import AcceptedEvent
from tether.platform import Platform
from tether.rollouts.delivery import Delivery, job_id
from tether.rollouts.model import CohortSpec, HaltReason, RolloutError
from tether.rollouts.store import Report
from tether.service.app import create_app

Sent = list[tuple[str, str, dict[str, Any]]]


@pytest.fixture
def platform(data_dir: Path, clock: Clock) -> Iterator[Platform]:
    p = open_platform(data_dir, clock)
    yield p
    p.close()


def watch(p: Platform) -> Sent:
    """Give the monitor a delivery that records what it would publish."""
    sent: Sent = []
    delivery = Delivery(p, lambda *message: sent.append(message))
    p.rollout_monitor.on_notify = delivery
    p.rollout_monitor.on_return = delivery.send_back
    return sent


def test_notified_carts_get_their_jobs_a_delta_for_those_on_its_base(
    platform: Platform, tmp_path: Path
) -> None:
    add_fleet(platform, [*fleet(4, fw="1.0.0"), ("CART09999", "acme", "A", "store-0", "0.9.0")])
    add_image(platform, tmp_path, "1.0.0")
    add_image(platform, tmp_path, "2.0.0", delta_from="1.0.0")
    planned = platform.rollouts.create(CohortSpec("retail-cart"), "2.0.0", "100%:0h")
    sent = watch(platform)
    platform.rollout_monitor.run_once()
    assert sorted(serial for serial, _, _ in sent) == sorted(
        [f"CART{i:05d}" for i in range(4)] + ["CART09999"]
    )
    anchors = [platform.firmware_public_key()]
    for serial, channel, message in sent:
        assert channel == "commands"
        job = read_job(message, anchors)
        assert job.job == job_id(planned.rollout.id, serial) and job.rollout == str(
            planned.rollout.id
        )
        on_base = serial != "CART09999"
        assert job.url.endswith("/2.0.0/image?delta_from=1.0.0") is on_base
        assert job.url.startswith("https://localhost:8443/v1/firmware/retail-cart/")


def hello(serial: str, fw: str) -> AcceptedEvent:
    at = int(NOW * 1000)
    return AcceptedEvent(
        tenant="acme",
        serial=serial,
        device_class="oral-care-brush",
        dedupe_key="1",
        seq=1,
        type="hello",
        v=1,
        device_ts=at,
        ts=at,
        arrival=at,
        clock_corrected=False,
        door="gateway",
        body={"fw": fw, "hw": "A", "capabilities": [], "trust_anchors": [ANCHOR]},
    )


def test_a_phone_app_fetches_the_jobs_of_its_bonded_brushes(
    platform: Platform, tmp_path: Path
) -> None:
    platform.authority.init_tenant("acme")
    mine, theirs = provision(platform, "oral-care-brush"), provision(platform, "oral-care-brush")
    platform.device_state.apply(
        [hello(mine.serial, "1.0.0"), hello(theirs.serial, "1.0.0")],
        {r.name: r for r in platform.catalog},
    )
    add_image(platform, tmp_path, "1.1.0", device_class="oral-care-brush", hw=["A"])
    planned = platform.rollouts.create(CohortSpec("oral-care-brush"), "1.1.0", "100%:0h")
    sent = watch(platform)
    platform.rollout_monitor.run_once()
    assert sent == []  # brushes have no MQTT: their apps ask
    account = platform.accounts.create_account("acme", NOW)
    platform.accounts.bond(mine.serial, account.id, NOW, actor="factory", reason="first owner")
    auth = {"Authorization": f"Bearer {platform.accounts.issue_token(account.id, NOW)}"}
    http = TestClient(create_app(platform))
    jobs = http.get("/v1/ota/jobs", headers=auth).json()["jobs"]
    assert [j["serial"] for j in jobs] == [mine.serial]
    job = read_job(jobs[0]["job"], [platform.firmware_public_key()])
    assert job.url.endswith("/v1/firmware/oral-care-brush/1.1.0/image")
    # Fetched again: the same job; while the rollout is halted, none; once installed, none.
    again = http.get("/v1/ota/jobs", headers=auth).json()["jobs"]
    assert again[0]["job"]["job"] == job.job
    rid = planned.rollout.id
    platform.rollout_store.halt(rid, [HaltReason("rollback", "a device rolled back", NOW)])
    assert http.get("/v1/ota/jobs", headers=auth).json()["jobs"] == []
    platform.rollout_store.release(rid, NOW + 1)
    assert len(http.get("/v1/ota/jobs", headers=auth).json()["jobs"]) == 1
    platform.rollout_store.apply([Report(mine.serial, "installed", NOW + 60, rid)])
    assert http.get("/v1/ota/jobs", headers=auth).json()["jobs"] == []
    assert http.get("/v1/ota/jobs").status_code == 401


def test_abort_sends_devices_on_the_new_version_back_to_theirs(
    platform: Platform, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    add_fleet(platform, [*fleet(3, fw="1.0.0"), ("CART09999", "acme", "A", "store-0", "0.9.0")])
    add_image(platform, tmp_path, "1.0.0")
    add_image(platform, tmp_path, "2.0.0")
    rid = platform.rollouts.create(CohortSpec("retail-cart"), "2.0.0", "100%:24h").rollout.id
    sent = watch(platform)
    platform.rollout_monitor.check()
    booted, installed, waiting, orphan = "CART00000", "CART00001", "CART00002", "CART09999"
    status = {"rollout": str(rid), "version": "2.0.0"}
    boot = {"fw": "2.0.0", "slot": "B", "previous_fw": "1.0.0", "rolled_back": False}
    platform.rollout_tracker.apply(
        [
            event(booted, 10, "ota-status", NOW + 60, **status, state="installed"),
            event(booted, 11, "boot", NOW + 90, **boot),
            event(installed, 10, "ota-status", NOW + 60, **status, state="installed"),
            event(orphan, 10, "ota-status", NOW + 60, **status, state="installed"),
        ]
    )
    sent.clear()
    platform.rollouts.abort(rid, return_to_previous=True)
    with caplog.at_level(logging.WARNING, logger="tether.rollouts.delivery"):
        platform.rollout_monitor.check()
    anchors = [platform.firmware_public_key()]
    back = {serial: read_job(message, anchors) for serial, _, message in sent}
    assert set(back) == {booted, installed}  # not the one still downloading, nor the orphan
    assert all(job.url.endswith("/retail-cart/1.0.0/image") for job in back.values())
    assert any(orphan in m and "0.9.0" in m for m in caplog.messages)
    states = {d.serial: d.state for d in platform.rollout_store.devices(rid)}
    assert states[booted] == states[installed] == "returning"
    assert states[waiting] == "notified" and states[orphan] == "installed"
    sent.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tether.rollouts.delivery"):
        platform.rollout_monitor.check()
    assert sent == []  # sent back once
    assert not caplog.messages  # the stranded one is said once
    returned = {"fw": "1.0.0", "slot": "A", "previous_fw": "2.0.0", "rolled_back": False}
    platform.rollout_tracker.apply([event(booted, 12, "boot", NOW + 300, **returned)])
    states = {d.serial: d.state for d in platform.rollout_store.devices(rid)}
    assert states[booted] == "returned" and states[installed] == "returning"
    data_dir = Path(platform.settings.data_dir)
    engines = ["--data-dir", str(data_dir), "--config", str(data_dir / SETTINGS_FILE)]
    shown = CliRunner().invoke(cli, [*engines, "rollout", "status", str(rid)])
    assert "1 returned, 1 on their way, 1 still to return" in " ".join(shown.output.split())


def test_abort_can_send_back_one_revision_and_leave_the_others(
    platform: Platform, tmp_path: Path
) -> None:
    add_fleet(platform, fleet(6, hws="ABC", fw="1.0.0"))
    add_image(platform, tmp_path, "1.0.0")
    add_image(platform, tmp_path, "2.0.0")
    rid = platform.rollouts.create(CohortSpec("retail-cart"), "2.0.0", "100%:24h").rollout.id
    sent = watch(platform)
    platform.rollout_monitor.check()
    status = {"rollout": str(rid), "version": "2.0.0", "state": "installed"}
    serials = [f"CART{i:05d}" for i in range(6)]
    platform.rollout_tracker.apply(
        [event(serial, 10, "ota-status", NOW + 60, **status) for serial in serials]
    )
    with pytest.raises(RolloutError, match="add --return-to-previous"):
        platform.rollouts.abort(rid, hw=["B"])
    with pytest.raises(RolloutError, match="not Z"):
        platform.rollouts.abort(rid, return_to_previous=True, hw=["Z"])
    sent.clear()
    assert platform.rollouts.abort(rid, return_to_previous=True, hw=["B"]) == 2
    platform.rollout_monitor.check()
    hw = {d.serial: d.hw for d in platform.rollout_store.devices(rid)}
    assert sorted(serial for serial, _, _ in sent) == sorted(s for s in serials if hw[s] == "B")
    states = {d.serial: d.state for d in platform.rollout_store.devices(rid)}
    assert all(states[s] == ("returning" if hw[s] == "B" else "installed") for s in serials)
