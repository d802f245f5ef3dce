"""Cohorts, opt-outs, stratified stages, plans and maintenance windows (pure functions)."""

from __future__ import annotations

import datetime as dt

import pytest

from tether.rollouts.model import CohortSpec, RolloutError
from tether.rollouts.plan import (
    DEFAULT_PLAN,
    Candidate,
    OptOuts,
    Window,
    may_notify,
    parse_plan,
    parse_windows,
    select,
    stage_sizes,
    stratified_order,
)


def fleet() -> list[Candidate]:
    out: list[Candidate] = []
    for i in range(2000):
        hw = "C" if i % 100 == 0 else ("A" if i % 2 else "B")  # C is rare: 1 %
        out.append(
            (f"SN{i:05d}", "acme" if i % 10 else "beta", "retail-cart", hw, "1.0", f"s{i % 25}")
        )
    out.append(("SNX", "acme", "power-tool", "A", "1.0", "s1"))
    out.append(("SNY", "acme", "retail-cart", "A", "0.9", "de-berlin"))
    return out


def test_the_default_plan_is_canary_then_shares() -> None:
    stages = parse_plan(DEFAULT_PLAN)
    assert [(s.amount, s.is_share, s.soak_s) for s in stages] == [
        (10, False, 24 * 3600),
        (1, True, 72 * 3600),
        (10, True, 24 * 3600),
        (25, True, 24 * 3600),
        (100, True, 0),
    ]
    assert stages[0].label == "canary"
    assert stage_sizes(stages, 2000) == [10, 10, 180, 300, 1500]
    assert stage_sizes(stages, 5) == [5, 0, 0, 0, 0]


@pytest.mark.parametrize("bad", ["", "canary:x:24h", "10%:soon", "50%:1h,10%:1h", "300%:1h"])
def test_bad_plans_are_typed_errors(bad: str) -> None:
    with pytest.raises(RolloutError):
        parse_plan(bad)


def test_cohort_selection_and_exclusions() -> None:
    everyone = fleet()
    spec = CohortSpec("retail-cart")
    assert len(select(everyone, spec, OptOuts())) == 2001
    assert {c[0] for c in select(everyone, CohortSpec("retail-cart", hw=("C",)), OptOuts())} == {
        f"SN{i:05d}" for i in range(0, 2000, 100)
    }
    assert [
        c[0] for c in select(everyone, CohortSpec("retail-cart", from_fw=("0.9",)), OptOuts())
    ] == ["SNY"]
    assert [
        c[0] for c in select(everyone, CohortSpec("retail-cart", sites=("de-*",)), OptOuts())
    ] == ["SNY"]
    assert len(select(everyone, CohortSpec("retail-cart", sites=("s1", "s2")), OptOuts())) == 160
    assert [
        c[0]
        for c in select(everyone, CohortSpec("retail-cart", devices=("SN00001", "SNX")), OptOuts())
    ] == ["SN00001"]
    opted = OptOuts(
        tenants=frozenset({"beta"}), sites=frozenset({"s3"}), devices=frozenset({"SN00001"})
    )
    kept = select(everyone, spec, opted)
    assert all(c[1] != "beta" and c[5] != "s3" and c[0] != "SN00001" for c in kept)
    assert len(kept) == 2001 - 200 - 80 - 1  # none of s3's 80 is beta's


def test_early_stages_span_revisions_and_sites_and_follow_the_seed() -> None:
    cohort = select(fleet(), CohortSpec("retail-cart"), OptOuts())
    order = stratified_order(cohort, seed=7)
    assert sorted(order) == sorted(cohort)
    canary = order[:10]
    assert {c[3] for c in canary} == {"A", "B", "C"}  # the rare revision is in the canary
    assert len({c[5] for c in canary}) >= 6  # spread over sites (every C is at s0)
    first = order[:20]
    for hw in "AB":
        assert len({c[5] for c in first if c[3] == hw}) >= 6
    assert stratified_order(cohort, seed=7) == order
    assert stratified_order(list(reversed(cohort)), seed=7) == order
    assert stratified_order(cohort, seed=8)[:10] != canary


def at(hour: int, minute: int = 0, zone: str = "UTC") -> float:
    from zoneinfo import ZoneInfo

    return dt.datetime(2027, 1, 15, hour, minute, tzinfo=ZoneInfo(zone)).timestamp()


def test_maintenance_windows_run_past_midnight_in_local_time() -> None:
    night = Window.parse("22:00-06:00")
    assert night.contains(at(23)) and night.contains(at(2)) and night.contains(at(22))
    assert not night.contains(at(6)) and not night.contains(at(12))
    day = Window.parse("09:30-10:00")
    assert day.contains(at(9, 45)) and not day.contains(at(10, 0))
    berlin = Window.parse("22:00-06:00@Europe/Berlin")
    assert berlin.contains(at(22, 30, "Europe/Berlin"))
    assert not berlin.contains(at(21, 30, "UTC") - 3600 * 3)  # 19:30 in Berlin
    windows = parse_windows(["store-1=22:00-06:00@Europe/Berlin"])
    assert str(windows["store-1"]) == "22:00-06:00@Europe/Berlin"
    assert may_notify("store-2", windows, at(12))  # no window: any time
    assert not may_notify("store-1", windows, at(12, 0, "Europe/Berlin"))
    assert may_notify("store-1", windows, at(23, 0, "Europe/Berlin"))
    for bad in ["nowhere", "s=25:00-06:00", "s=22:00-06:00@Mars/Base", "=22:00-06:00"]:
        with pytest.raises(RolloutError):
            parse_windows([bad])
