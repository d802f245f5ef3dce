"""The ``rollouts`` section of scenario files: what it says, and every mistake named by key."""

from __future__ import annotations

from typing import Any

import pytest

from tether.sim.errors import ScenarioError
from tether.sim.firmware import defects_of
from tether.sim.scenario import load_scenario, scenario_from


def base(rollouts: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "x",
        "duration": "4d",
        "fleet": {"carts": {"stores": [{"name": "s1", "carts": 3, "hw": "B"}]}},
        "rollouts": rollouts,
    }


IMAGE = {"class": "retail-cart", "version": "3.3.0", "hw": ["B"], "size": 4096}


def test_the_canary_scenario() -> None:
    canary = load_scenario("canary")
    assert canary.devices == 2000
    assert {s.hw for s in canary.fleet.carts.stores} == {"A", "B", "C"}
    assert canary.fleet.carts.idle_health == 3 * 3600
    (image,) = canary.rollouts.images
    defects = defects_of(image)
    assert defects.crash_after_hours("B") == 60 and defects.crash_after_hours("A") is None
    (rollout,) = canary.rollouts.create
    assert rollout.at == 3600 and rollout.on_halt.do == "abort-return"
    assert rollout.plan.startswith("canary:10:24h,1%:72h")


def test_defaults_leave_a_scenario_without_updates() -> None:
    plain = load_scenario("store-outage")
    assert not plain.rollouts.enabled
    assert plain.fleet.carts.idle_health == 300
    assert all(s.hw is None for s in plain.fleet.carts.stores)


def test_a_rollout_section_reads_as_written() -> None:
    doc = base(
        {
            "images": [{**IMAGE, "defects": {"crash_at_boot": ["B"], "fault_rate": 3}}],
            "create": [
                {
                    "at": "2h",
                    "class": "retail-cart",
                    "version": "3.3.0",
                    "plan": "canary:1:1h,100%:0h",
                    "windows": {"s1": "22:00-06:00"},
                    "on_halt": {"after": "30m", "do": "abort"},
                }
            ],
            "crash_dark": ["1h", "2h"],
        }
    )
    spec = scenario_from(doc).rollouts
    assert spec.enabled and spec.crash_dark == (3600, 7200)
    assert defects_of(spec.images[0]).crashes_at_boot("B")
    assert defects_of(spec.images[0]).fault_multiplier("B") == 3
    assert spec.create[0].on_halt.after == 1800


@pytest.mark.parametrize(
    ("rollouts", "message"),
    [
        (
            {"create": [{"at": "1h", "class": "retail-cart", "version": "9.9.9"}]},
            "rollouts.create.0.version: no image retail-cart 9.9.9 in rollouts.images",
        ),
        (
            {"images": [IMAGE, IMAGE]},
            "rollouts.images.1: retail-cart 3.3.0 is listed twice",
        ),
        (
            {
                "images": [IMAGE],
                "create": [
                    {"at": "1h", "class": "retail-cart", "version": "3.3.0", "plan": "all:soon"}
                ],
            },
            "rollouts.create.0.plan:",
        ),
        (
            {
                "images": [IMAGE],
                "create": [
                    {
                        "at": "1h",
                        "class": "retail-cart",
                        "version": "3.3.0",
                        "windows": {"elsewhere": "22:00-06:00"},
                    }
                ],
            },
            "rollouts.create.0.windows: no store named 'elsewhere'",
        ),
        (
            {
                "images": [IMAGE],
                "create": [
                    {
                        "at": "1h",
                        "class": "retail-cart",
                        "version": "3.3.0",
                        "windows": {"s1": "at night"},
                    }
                ],
            },
            "rollouts.create.0.windows.s1:",
        ),
        (
            {
                "images": [IMAGE],
                "create": [{"at": "5d", "class": "retail-cart", "version": "3.3.0"}],
            },
            "rollouts.create.0.at: a rollout is created during the run",
        ),
        (
            {
                "images": [{**IMAGE, "class": "oral-care-brush"}],
                "create": [{"at": "1h", "class": "oral-care-brush", "version": "3.3.0"}],
            },
            "rollouts.create.0.class: the fleet has no oral-care-brush devices",
        ),
        (
            {"images": [{**IMAGE, "defects": {"crash_after": {"B": "soon"}}}]},
            "rollouts.images.0.defects.crash_after: 'soon' is not a duration",
        ),
        ({"images": [{**IMAGE, "class": "toaster"}]}, "rollouts.images.0.class"),
        ({"images": [{**IMAGE, "size": 10}]}, "rollouts.images.0.size"),
        (
            {
                "images": [IMAGE],
                "create": [
                    {
                        "at": "1h",
                        "class": "retail-cart",
                        "version": "3.3.0",
                        "on_halt": {"do": "panic"},
                    }
                ],
            },
            "rollouts.create.0.on_halt.do",
        ),
    ],
)
def test_mistakes_are_named(rollouts: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        scenario_from(base(rollouts), "bad.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("bad.yaml: ")
