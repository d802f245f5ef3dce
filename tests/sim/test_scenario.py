"""Scenario files: the shipped ones are valid, and every mistake is named with its key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tether.sim.errors import ScenarioError
from tether.sim.scenario import (
    load_scenario,
    parse_speed,
    scenario_from,
    shipped_scenarios,
    start_time,
)


def test_the_shipped_scenarios_are_valid() -> None:
    shipped = shipped_scenarios()
    assert {"brush-week", "store-outage", "mixed-day"} <= set(shipped)
    week = load_scenario("brush-week")
    assert week.fleet.brushes.count == 500 and week.fleet.brushes.ring_slots == 20
    assert week.duration == 7 * 86400 and week.speed == pytest.approx(7 * 86400 / 60)
    outage = load_scenario("store-outage").networks.stores.outages[0]
    assert (outage.at, outage.duration, outage.links) == (3600, 1800, ["wifi", "lte-m"])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"name": "x"}, "duration: Field required"),
        ({"name": "x", "duration": "a week"}, "duration: 'a week' is not a duration"),
        ({"name": "x", "duration": "1d", "colour": "red"}, "colour: Extra inputs"),
        ({"name": "x", "duration": "1d", "speed": "fast"}, "speed: 'fast': write a speed"),
        ({"name": "x", "duration": "1d", "start": "yesterday"}, "start: 'yesterday': start is"),
        (
            {"name": "x", "duration": "1d", "start": "2001-01-01T00:00:00"},
            "has passed: the fleet's certificates are dated by this machine's clock",
        ),
        (
            {"name": "x", "duration": "1d", "fleet": {"brushes": {"count": -1}}},
            "fleet.brushes.count: Input should be greater than or equal to 0",
        ),
        (
            {"name": "x", "duration": "1d", "networks": {"phones": {"payload": {10: 1}}}},
            "BLE payloads are 20",
        ),
        (
            {
                "name": "x",
                "duration": "1d",
                "fleet": {"carts": {"stores": [{"name": "a", "carts": 1, "hours": "9-5"}]}},
            },
            "fleet.carts.stores.0.hours: '9' is not a time of day",
        ),
        (
            {
                "name": "x",
                "duration": "1d",
                "networks": {"stores": {"outages": [{"store": "nope", "at": "1h", "for": "1m"}]}},
            },
            "networks.stores.outages.0.store: no store named 'nope'",
        ),
    ],
)
def test_mistakes_name_their_key(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        scenario_from(doc, "mine.yaml")
    assert str(caught.value).startswith("mine.yaml: ")
    assert message in str(caught.value)


def test_files_that_are_not_scenarios(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"no scenario file 'nowhere\.yaml'; give a path"):
        load_scenario("nowhere.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: not valid YAML"):
        load_scenario(bad)
    bad.write_text("- a list")
    with pytest.raises(ScenarioError, match="a scenario is a mapping"):
        load_scenario(bad)


def test_speeds_and_starts() -> None:
    assert parse_speed("1w/1m") == 10080.0
    assert parse_speed("max") is None and parse_speed(60) == 60.0
    now = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    assert start_time("now", 0, now) == now
    assert start_time("next 09:00", 0, now) == now + 3600
    assert start_time("next 07:00", 3600, now) == now + 22 * 3600  # 07:00 at UTC+1 has passed
    assert start_time("2027-01-15T10:00:00+00:00", 0, now) == now + 7200
    assert abs(start_time("now", 0, time.time()) - time.time()) < 2
