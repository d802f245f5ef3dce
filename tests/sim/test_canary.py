"""The canary near-disaster (seed 000 part 05, issue 7's acceptance), in compressed time.

The shipped ``canary`` scenario: 2,000 carts over MQTT in 20 stores on hardware
revisions A, B and C. An operator rolls out 3.3.0 with the default plan; the
image boots clean everywhere but crashes revision B about 60 hours after boot,
long after its slot was marked good, so nothing on the device rolls it back:
the cart goes dark until someone power-cycles it. The platform's survival
rule, per hardware revision, halts the rollout at the 1 % stage; the operator
aborts it with return-to-previous two hours later.

What the run shows, and this test holds:

- the halt is the survival rule on revision B, at the canary or 1 % stage, and
  nothing past the 1 % stage was ever notified;
- no cart was rolled back by its bootloader, and the platform recorded no
  rollback: the crash comes long after the boot counter was satisfied;
- the revision-B carts that crashed stayed dark until a power cycle and came
  back up on 3.3.0: no cart is bricked;
- the abort returns revision B alone (``--return-to-previous --hw B``): each
  revision-B cart on 3.3.0 gets a job for 3.2.0, downloads, verifies, installs
  and boots it from its other slot, and the platform records it ``returned``;
  the updated carts of revisions A and C are untouched: still on 3.3.0, booted
  clean, reporting; every other cart of the fleet runs 3.2.0;
- ``tether rollout status`` tells the story: stages, the halt and its reason,
  the abort, health per revision.

About the 60 hours: the survival rule counts a device as reporting 72 hours
after its update when it was seen within 6 hours of that moment, so a crash
later than 66 hours after the update never shows in it; the image here
crashes a little earlier than the seed's "about three days".
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether.cli.main import app
from tether.sim.run import run_scenario
from tether.sim.scenario import load_scenario

pytestmark = pytest.mark.timeout(900)
REVISION_B_STORES = {f"store-{n:02d}" for n in range(9, 15)}  # the scenario's hw per store


def test_a_rollout_that_crashes_revision_b_halts_at_the_one_percent_stage(
    tmp_path: Path,
) -> None:
    scenario = load_scenario("canary")
    assert scenario.devices == 2000
    report = run_scenario(scenario, tmp_path)
    assert report.ok, report.comparison.mismatches[:5]
    did = report.counts
    assert report.operator is not None and len(report.operator.created) == 1
    _, rid = report.operator.created[0]

    # The halt, and the operator's answer to it.
    assert did["rollouts.halted"] == 1
    assert did["rollouts.abort-return"] == 1
    decisions = [what for _, r, what in report.operator.decisions if r == rid]
    assert decisions[-1].startswith("aborted;")

    # One halt: the survival rule, on revision B alone.
    halts = report.rollout_halts[rid]
    assert [(rule, hw) for rule, hw, _ in halts] == [("survival", "B")], halts

    # Only the canary (10) and the 1 % stage (20 in all) were ever told; revision B went back.
    states = report.rollout_states[rid]
    books = report.ledger.books
    told = {
        serial
        for serial, book in books.items()
        if any(r.type == "boot" and r.body["fw"] == "3.3.0" for r in book.made.values())
    }
    sick = {serial for serial in told if books[serial].site in REVISION_B_STORES}
    assert len(told) == 20 and sick and told - sick, (len(told), len(sick))
    assert states == {
        "returned": len(sick),
        "booted_clean": len(told - sick),
        "queued": 1980,
    }, states

    # Revision B's updated carts crashed, went dark and came back on a power cycle.
    assert did["ota.crashes_after_boot"] >= 3
    assert did["ota.power_cycles"] == did["ota.crashes_after_boot"]
    assert did["ota.crashes_at_boot"] == 0 and did["ota.rolled_back_by_bootloader"] == 0
    assert did["ota.installed"] == 20 + len(sick)  # 20 there, revision B's back

    # Every cart booted some version at the end; the newest boot record of each says which.
    last_boot: dict[str, dict[str, object]] = {}
    crashed: set[str] = set()
    for serial, book in report.ledger.books.items():
        boots = [r for r in book.made.values() if r.type == "boot"]
        assert boots, f"{serial} never booted"
        last_boot[serial] = max(boots, key=lambda r: r.seq or 0).body
        if sum(1 for r in boots if r.body["fw"] == "3.3.0") > 1:  # booted it again: a crash
            crashed.add(serial)
    versions = Counter(str(body["fw"]) for body in last_boot.values())
    assert versions == Counter({"3.2.0": 2000 - len(told - sick), "3.3.0": len(told - sick)})
    assert {s for s, body in last_boot.items() if body["fw"] == "3.3.0"} == told - sick
    assert not any(body["rolled_back"] for body in last_boot.values())
    returned = {s for s, body in last_boot.items() if body["previous_fw"] == "3.3.0"}
    assert returned == sick
    assert crashed and crashed <= returned
    assert all(books[s].site in REVISION_B_STORES for s in crashed), crashed

    # The story as an operator reads it.
    result = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path / "platform"), "rollout", "status", str(rid)]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "aborted" in out
    assert "survival" in out and "hw B" in out
    assert "updated devices still" in out
    said = " ".join(out.split())
    assert f"return to the previous version (hw B): {len(sick)} returned" in said
    for stage in ("canary", "1%", "10%"):
        assert stage in out
    print(out)
