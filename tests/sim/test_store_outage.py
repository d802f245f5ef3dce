"""Acceptance, store outage: a store loses Wi-Fi and LTE-M for 30 simulated minutes while trading.

Afterwards every scan exists once on the platform and every session reaches a
final state. The carts reach tether over MQTT with mutual TLS through the
Mosquitto the platform runs; full scale (two stores, 36 carts, three hours).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tether.platform import Platform
from tether.sim.run import run_scenario
from tether.sim.scenario import load_scenario

pytestmark = pytest.mark.engine("mosquitto")


def test_store_outage(tmp_path: Path, reopen: Callable[[Path], Platform]) -> None:
    scenario = load_scenario("store-outage")
    outage = scenario.networks.stores.outages[0]
    assert outage.duration == 1800 and set(outage.links) == {"wifi", "lte-m"}
    report = run_scenario(scenario, tmp_path, speed=None)
    assert report.ok, "\n".join(str(m) for m in report.comparison.mismatches[:30])

    c = report.counts
    assert c["store.outages"] == 1 and c["cart.links_lost.wifi"] > 0
    assert c["cart.stored_offline"] > 100 and c["cart.republished"] >= c["cart.stored_offline"]
    assert c["cart.paid_at_terminal"] > 0  # checkouts during the outage went to the terminal

    began = report.start + outage.at
    ended = began + outage.duration
    platform = reopen(tmp_path)
    scans_made = 0
    spanning = 0
    for serial, book in report.ledger.books.items():
        events = platform.telemetry.by_device(serial, 0, 1 << 62, limit=100_000)
        keys = Counter(e.dedupe_key for e in events)
        assert set(keys) == set(book.made) and max(keys.values()) == 1  # every record, once
        made_scans = [r for r in book.made.values() if r.type == "scan"]
        stored_scans = [e for e in events if e.type == "scan"]
        assert sorted(e.seq or 0 for e in stored_scans) == sorted(r.seq or 0 for r in made_scans)
        scans_made += len(made_scans)
        starts = {e.body["session_id"]: e for e in events if e.type == "session-start"}
        ends = Counter(e.body["session_id"] for e in events if e.type == "session-end")
        outcomes = {e.body["outcome"] for e in events if e.type == "session-end"}
        assert set(starts) == set(ends) and set(ends.values()) <= {1}  # each ends once
        assert outcomes <= {"complete", "abandoned", "voided"}
        for sid in starts:
            during = [
                r for r in made_scans if r.body["session_id"] == sid and began <= r.made_at < ended
            ]
            spanning += bool(during) and book.site == outage.store
    assert scans_made > 2000
    assert spanning > 5  # sessions that scanned through the outage, and still ended
