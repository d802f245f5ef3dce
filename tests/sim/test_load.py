"""Load mode at a small size: the fleet is the mix asked for, and the counts add up.

The shipped ``load`` scenario is 20,000 devices (``bench/simulator.py`` runs
it); here it is scaled to 200 for half an hour, as fast as the machine goes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tether.sim.load import MQTT_CLASSES, figures, scaled
from tether.sim.run import run_scenario
from tether.sim.scenario import load_scenario
from tether.sim.world import BRUSH, CART, TOOL


def test_shipped_load_scenario_is_twenty_thousand_devices() -> None:
    scenario = load_scenario("load")
    fleet = scenario.fleet
    carts = sum(s.carts for s in fleet.carts.stores)
    tools = sum(s.tools for s in fleet.tools.sites)
    assert fleet.brushes.count + carts + tools >= 20_000
    assert scenario.speed is None
    # The same mix at any size; the stores it keeps keep their outages.
    small = scaled(200, 1800.0)
    assert small.fleet.brushes.count == 180
    assert sum(s.carts for s in small.fleet.carts.stores) == 15
    assert sum(s.tools for s in small.fleet.tools.sites) == 5
    kept = {s.name for s in small.fleet.carts.stores}
    assert all(o.store in kept for o in small.networks.stores.outages)
    with pytest.raises(ValueError):
        scaled(2)


def test_load_mode_counts_add_up(tmp_path: Path) -> None:
    scenario = scaled(200, 1800.0)
    began = time.monotonic()
    report = run_scenario(scenario, tmp_path, speed=None)
    result = figures(report, time.monotonic() - began)
    assert report.ok, "\n".join(str(m) for m in report.comparison.mismatches[:30])

    assert result.devices == 200
    assert result.by_class == {BRUSH: 180, CART: 15, TOOL: 5}
    assert result.mqtt_devices == 20
    # Every cart and tool connected, all of them at once (nothing drops them at the start).
    assert result.mqtt_peak == 20

    # Records made in the run: each class's own count, and the books agree.
    by_class = {
        cls: sum(
            1
            for b in report.ledger.books.values()
            if b.device_class == cls
            for r in b.made.values()
            if r.made_at >= report.start
        )
        for cls in (BRUSH, CART, TOOL)
    }
    for cls, made in by_class.items():
        assert report.counts[f"{cls}.records"] == made
    assert result.made == sum(by_class.values()) > 0
    # What reached a door landed, all of it, once; MQTT devices sent everything they made.
    assert result.landed == result.reached > 0
    mqtt_made = sum(by_class[cls] for cls in MQTT_CLASSES)
    mqtt_reached = sum(
        len(b.delivered) for b in report.ledger.books.values() if b.device_class in MQTT_CLASSES
    )
    assert mqtt_reached == mqtt_made
    assert result.simulated_seconds >= 1800
    assert result.made_per_second > 0 and result.landed_per_second > 0
