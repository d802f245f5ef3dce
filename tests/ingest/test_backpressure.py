"""Backpressure: when the telemetry store falls behind, the doors push back and lose nothing."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.identity.conftest import Clock
from tests.ingest import helpers
from tests.ingest.helpers import HEALTH, MqttDevice, device, wait_for
from tether.doors.backlog import Backlog
from tether.platform import Platform
from tether.runtime import Runtime
from tether.service.app import create_app
from tether.stream import StreamEntry, open_stream

LIMIT = 5


def open_platform(tmp: Path) -> Platform:
    p = helpers.open_platform(tmp, Clock(time.time()), ingest={"max_backlog": LIMIT})
    p.backlog.refresh = 0.0  # read the lag on every check
    return p


def test_the_lag_is_read_at_most_once_a_refresh(tmp_path: Path) -> None:
    events = open_stream(f"sqlite:///{tmp_path / 's.sqlite'}", "events")
    now = [0.0]
    backlog = Backlog(events, "projector", limit=2, refresh=1.0, clock=lambda: now[0])
    events.append([StreamEntry(None, b"x")] * 3)
    assert backlog.lag() == 3 and backlog.over()
    events.commit("projector", 3)
    assert backlog.lag() == 3  # the same second: the figure read before
    now[0] = 1.0
    assert backlog.lag() == 0 and not backlog.over()
    events.close()


def test_https_answers_429_while_the_store_is_behind(tmp_path: Path) -> None:
    p = open_platform(tmp_path)
    client = TestClient(create_app(p))
    account = p.accounts.create_account("acme", p.clock())
    token = p.accounts.issue_token(account.id, p.clock())
    brush = device(p, "oral-care-brush")
    p.accounts.bond(brush.serial, account.id, p.clock(), actor="shop", reason="sold")

    def upload(seqs: range) -> tuple[int, dict[str, object], dict[str, str]]:
        records = [
            {
                "device": brush.serial,
                "data": base64.b64encode(
                    brush.record(s, "hello", {"fw": "1.0.0", "capabilities": []})
                ).decode(),
            }
            for s in seqs
        ]
        res = client.post(
            "/v1/records", headers={"Authorization": f"Bearer {token}"}, json={"records": records}
        )
        return res.status_code, res.json(), dict(res.headers)

    status, _, _ = upload(range(1, 8))  # 7 accepted, none projected yet
    assert status == 200
    status, body, headers = upload(range(8, 10))
    assert status == 429
    assert body["error"] == "rate_limited" and "7 events behind" in str(body["detail"])
    assert headers["retry-after"] == "5"
    while p.projector.run_once():
        pass
    status, body, _ = upload(range(8, 10))
    assert status == 200
    assert [r["outcome"] for r in body["results"]] == ["accepted", "accepted"]
    p.close()


@pytest.mark.engine("mosquitto")
def test_the_bridge_leaves_messages_with_the_broker_until_the_store_catches_up(
    tmp_path: Path,
) -> None:
    p = open_platform(tmp_path)
    rt = Runtime(p, roles=["bridge", "gate", "rejects"])  # no projector: the store stalls
    rt.start()
    try:
        cart = MqttDevice(p, rt, device(p), tmp_path)
        for seq in range(1, 11):
            cart.send(cart.dev.record(seq, "health", HEALTH))
        raw, events = p.stream("raw"), p.stream("events")
        wait_for(lambda: events.last_offset() == 10)  # judged, and none stored: over the limit
        for seq in range(11, 31):
            cart.send(cart.dev.record(seq, "health", HEALTH))  # the broker takes them ...
        time.sleep(2.0)
        assert raw.last_offset() == 10  # ... and keeps them while the store stalls

        def project() -> bool:
            p.projector.run_once()
            return p.telemetry.count() == 30

        wait_for(project, timeout=60)
        assert sorted(p.telemetry.seqs(cart.dev.serial)) == list(range(1, 31))
    finally:
        rt.stop()
        p.close()
