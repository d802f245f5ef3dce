"""An image that crashes one revision at boot: the boot counter undoes it, the rollout halts.

A near-miss of seed 002 part 09, end to end: carts of revision B never attest
the new image, their bootloader returns them to the old slot after three boots
and their next ``boot`` record says ``rolled_back: true``; the platform records
the rollbacks and its rollback rule halts the rollout in its canary, so the
rest of the fleet is never notified. Revision A's canary carts run the new
image, booted clean.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tether.sim.run import run_scenario
from tether.sim.scenario import scenario_from

pytestmark = pytest.mark.timeout(600)


def test_a_crash_at_boot_is_rolled_back_by_the_boot_counter_and_halts_the_canary(
    tmp_path: Path,
) -> None:
    doc = {
        "name": "boot-crash",
        "seed": 4,
        "duration": "12h",
        "speed": "1d/40s",
        "fleet": {
            "carts": {
                "fw": "3.2.0",
                "idle_health": "1h",
                "stores": [
                    {"name": "north", "carts": 15, "hw": "A", "customers_per_hour": 0},
                    {"name": "south", "carts": 15, "hw": "B", "customers_per_hour": 0},
                ],
            }
        },
        "networks": {"stores": {"wifi_flaps_per_hour": 0}},
        "rollouts": {
            "images": [
                {
                    "class": "retail-cart",
                    "version": "3.3.1",
                    "hw": ["A", "B"],
                    "size": 8192,
                    "defects": {"crash_at_boot": ["B"]},
                }
            ],
            "create": [
                {
                    "at": "1h",
                    "class": "retail-cart",
                    "version": "3.3.1",
                    "plan": "canary:6:6h,100%:0h",
                }
            ],
        },
    }
    report = run_scenario(scenario_from(doc), tmp_path)
    assert report.ok, report.comparison.mismatches[:5]
    did = report.counts
    assert report.operator is not None
    _, rid = report.operator.created[0]
    states = report.rollout_states[rid]
    assert states == {"booted_clean": 3, "rolled_back": 3, "queued": 24}, states
    assert did["rollouts.halted"] == 1
    assert did["ota.rolled_back_by_bootloader"] == 3
    assert did["ota.crashes_at_boot"] == 3 * 3  # three boots each before the counter gives up

    for book in report.ledger.books.values():
        boots = sorted(
            (r for r in book.made.values() if r.type == "boot"), key=lambda r: r.seq or 0
        )
        last = boots[-1].body
        if any(
            r.type == "ota-status" and r.body.get("state") == "installed"
            for r in book.made.values()
        ):
            if last["fw"] == "3.2.0":  # a revision-B cart, back on its old slot
                assert last["rolled_back"] is True and last["previous_fw"] == "3.3.1"
            else:
                assert last == {
                    "fw": "3.3.1",
                    "slot": "B",
                    "previous_fw": "3.2.0",
                    "rolled_back": False,
                }
        else:
            assert last["fw"] == "3.2.0"
    installed = Counter(
        r.body.get("state")
        for b in report.ledger.books.values()
        for r in b.made.values()
        if r.type == "ota-status"
    )
    assert installed["installed"] == 6 and installed["failed"] == 0
