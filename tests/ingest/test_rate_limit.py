"""``rate_limited``: each device's record budget, through HTTPS and MQTT.

The budget runs on arrival times (the platform's clock), so these tests move a
test clock instead of sleeping. A refused record is the sender's to keep: sent
again once the budget has refilled, it lands.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.gate.conftest import Device
from tests.identity.conftest import Clock
from tests.ingest import helpers
from tests.ingest.helpers import HEALTH, MqttDevice, device, wait_for
from tether.gate.ratelimit import RecordBudget
from tether.platform import Platform
from tether.runtime import Runtime
from tether.service.app import create_app

RATE, BURST = 2, 5


def open_platform(tmp: Path, clock: Clock) -> Platform:
    budgets = {"device_records_per_second": RATE, "device_burst": BURST}
    return helpers.open_platform(tmp, clock, ingest=budgets)


def test_budget_refills_with_arrival_time_and_caps_at_the_burst() -> None:
    budget = RecordBudget(rate=2, burst=3)
    assert [budget.allow("A", 0) for _ in range(4)] == [True, True, True, False]
    assert budget.allow("B", 0)  # each device has its own
    assert budget.allow("A", 500)  # half a second: one record back
    assert not budget.allow("A", 500)
    assert not budget.allow("A", 400)  # an earlier arrival refills nothing
    assert [budget.allow("A", 60_000) for _ in range(4)] == [True, True, True, False]


def test_over_https_the_records_over_budget_are_refused_then_land(tmp_path: Path) -> None:
    clock = Clock(time.time())
    p = open_platform(tmp_path, clock)
    client = TestClient(create_app(p))
    account = p.accounts.create_account("acme", clock())
    token = p.accounts.issue_token(account.id, clock())
    brush, other = device(p, "oral-care-brush"), device(p, "oral-care-brush")
    for b in (brush, other):
        p.accounts.bond(b.serial, account.id, clock(), actor="shop", reason="sold")

    def upload(items: list[tuple[Device, bytes]]) -> list[dict[str, object]]:
        res = client.post(
            "/v1/records",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "records": [
                    {"device": d.serial, "data": base64.b64encode(data).decode()}
                    for d, data in items
                ]
            },
        )
        assert res.status_code == 200, res.text
        results: list[dict[str, object]] = res.json()["results"]
        return results

    def hello(dev: Device, seq: int) -> bytes:
        return dev.record(seq, "hello", {"fw": "1.0.0", "capabilities": []})

    # Forgeries naming the brush do not spend its budget.
    forged = [
        (brush, other.record(90 + i, "hello", {"fw": "1", "capabilities": []})) for i in range(4)
    ]
    assert [r["code"] for r in upload(forged)] == ["bad_signature"] * 4

    drain = [(brush, hello(brush, s)) for s in range(1, 9)] + [(other, hello(other, 1))]
    results = upload(drain)
    assert [r["outcome"] for r in results] == ["accepted"] * 5 + ["rejected"] * 3 + ["accepted"]
    assert [(r["seq"], r["code"]) for r in results[5:8]] == [
        (seq, "rate_limited") for seq in (6, 7, 8)
    ]
    assert "send it later" in str(results[5]["detail"])

    clock.advance(1.0)  # two records' worth
    again = upload(drain[5:8])
    assert [r["code"] for r in again] == [None, None, "rate_limited"]
    clock.advance(0.5)
    assert [r["outcome"] for r in upload(drain[7:8])] == ["accepted"]
    assert upload(drain[:1])[0]["outcome"] == "duplicate"  # judged once landed, as ever

    p.rejects.run_once()
    counts = {c.code: c.count for c in p.rejects.counts(brush.serial)}
    assert counts == {"bad_signature": 4, "rate_limited": 4}
    p.close()


@pytest.mark.engine("mosquitto")
def test_over_mqtt_the_device_hears_which_records_to_send_again(tmp_path: Path) -> None:
    clock = Clock(time.time())
    p = open_platform(tmp_path, clock)
    rt = Runtime(p)
    rt.start()
    try:
        cart = MqttDevice(p, rt, device(p), tmp_path)
        records = {seq: cart.dev.record(seq, "health", HEALTH) for seq in range(1, 8)}
        for record in records.values():
            cart.send(record)
        refused = sorted(_refusals(cart, 2))
        wait_for(lambda: p.telemetry.count() == 5)
        assert refused == [(6, "rate_limited"), (7, "rate_limited")]

        clock.advance(2.0)
        for seq, _ in refused:
            cart.send(records[seq])
        wait_for(lambda: p.telemetry.count() == 7)
        assert sorted(p.telemetry.seqs(cart.dev.serial)) == list(range(1, 8))
    finally:
        rt.stop()
        p.close()


def test_replay_judges_without_budgets(tmp_path: Path) -> None:
    """A replay re-judges records already in hand: none is refused for their number."""
    from tether.gate.replay import replay
    from tether.gate.submission import DIRECT, Submission

    clock = Clock(time.time())
    p = open_platform(tmp_path, clock)
    cart = device(p)
    at = int(clock() * 1000)
    subs = [
        Submission(cart.serial, cart.record(s, "health", HEALTH), DIRECT, at) for s in range(1, 9)
    ]
    p.stream("raw").append([s.entry() for s in subs])
    assert replay(p.stream("raw"), p.replay_gate, 0) == {"accepted": 8}
    assert p.gate.budget is not None and p.replay_gate.budget is None
    p.close()


def _refusals(cart: MqttDevice, n: int) -> list[tuple[int, str]]:
    import json

    out = []
    for _ in range(n):
        msg = json.loads(cart.session.messages.get(timeout=20).payload)
        out.append((int(msg["seq"]), str(msg["code"])))
    return out
