"""Acceptance, brush week: 500 brushes for a simulated week, the app closed most of the time.

With a ring of 20 records, the platform must hold, per device, exactly what the
device still had when a phone drained it, once each despite re-drains, and
report the records the device overwrote before any drain as lost gaps. The run
compares every device itself (``report.ok``); this test also reads the
platform's stores again and checks the acceptance statement directly against
the ground truth the devices kept.

Full scale (500 brushes, 7 days); it runs as fast as the machine allows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tether.platform import Platform
from tether.projections.gaps import find_gaps
from tether.sim.ledger import ranges
from tether.sim.run import run_scenario
from tether.sim.scenario import load_scenario


def test_brush_week(tmp_path: Path, reopen: Callable[[Path], Platform]) -> None:
    scenario = load_scenario("brush-week")
    assert scenario.fleet.brushes.count == 500 and scenario.fleet.brushes.ring_slots == 20
    report = run_scenario(scenario, tmp_path, speed=None)
    assert report.devices == {"oral-care-brush": 500}
    assert report.ok, "\n".join(str(m) for m in report.comparison.mismatches[:30])

    # The week the issue describes happened.
    c = report.counts
    assert report.end - report.start >= 7 * 86400
    assert c["phone.connections"] < 0.2 * c["brush.sessions"]  # the app is mostly closed
    assert c["brush.ring_overwrites"] > 500  # rings overwrote during the week
    assert c["ble.notifications_lost"] > 0 and c["ble.rewinds"] > 0
    assert c["ble.dropped_mid_drain"] > 0
    assert c["gateway.duplicate"] > 0  # ranges drained and uploaded again
    assert c["gateway.responses_lost"] > 0 and c["phone.uploads_postponed"] > 0
    assert c["brush.clock_resets"] > 0 and c["brush.battery_low"] > 0
    assert c["gateway.rejected"] == 0
    late = report.delays["oral-care-brush"]
    assert late["max"] > 2 * 86400  # some uploads arrive days late

    platform = reopen(tmp_path)
    with_lost = 0
    for serial, book in report.ledger.books.items():
        landed = platform.telemetry.seqs(serial)
        events = platform.telemetry.by_device(serial, 0, 1 << 62, limit=100_000)
        assert len(events) == len(landed) == len(set(landed))  # nothing stored twice
        for event in events:  # the platform ran on the world's clock: arrival is delivery
            assert abs(event.arrival - book.delivered_at[event.dedupe_key] * 1000) < 1
        # Exactly what phones drained from the device's ring and got to tether.
        assert landed == sorted(int(key) for key in book.delivered)
        sessions = {e.seq for e in events if e.type == "session"}
        drained = [book.made[key] for key in book.delivered]
        assert sessions == {r.seq for r in drained if r.type == "session"}
        # The overwritten ones, as lost gaps (below the newest hello's lowest_seq_held).
        state = platform.device_state.get(serial)
        gaps = find_gaps(landed, state.lowest_seq_held if state else None)
        if book.newest_hello is None:
            assert not landed or gaps.lost == []
            continue
        lowest = book.newest_hello[1]
        assert state is not None and state.lowest_seq_held == lowest
        overwritten = {s for s in book.evicted if str(s) not in book.delivered and s < lowest}
        assert gaps.lost == ranges(overwritten)
        with_lost += bool(gaps.lost)
    assert with_lost > 100
