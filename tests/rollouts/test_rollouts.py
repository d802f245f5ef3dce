"""Rollouts end to end on each entity engine: create, track, halt, release, abort, opt-outs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rollouts.conftest import (
    ANCHOR,
    NEW_ANCHOR,
    NOW,
    Clock,
    add_fleet,
    add_image,
    event,
    fleet,
    open_platform,
)
from tether.errors import NotFoundError
from tether.platform import Platform
from tether.rollouts.model import (
    ABORTED,
    BOOTED,
    COMPLETED,
    FAILED,
    HALTED,
    NOTIFIED,
    QUEUED,
    ROLLED_BACK,
    RUNNING,
    CohortSpec,
    IllegalTransitionError,
    RolloutError,
    TrustDependencyError,
)
from tether.rollouts.plan import parse_windows
from tether.rollouts.store import Report

H = 3600.0


@pytest.fixture
def platform(data_dir: Path, clock: Clock) -> Iterator[Platform]:
    p = open_platform(data_dir, clock)
    yield p
    p.close()


def test_create_plans_a_stratified_cohort_without_opted_out_devices(
    platform: Platform, tmp_path: Path
) -> None:
    add_fleet(platform, [*fleet(60), ("BETA1", "beta", "A", "store-9", "1.0.0")])
    add_fleet(platform, [("OLDHW", "acme", "Z", "store-1", "1.0.0")])
    add_image(platform, tmp_path)
    store = platform.rollout_store
    store.opt_out("tenant", "beta", NOW)
    store.opt_out("device", "CART00007", NOW)
    store.opt_out("site", "store-3", NOW)
    planned = platform.rollouts.create(
        CohortSpec("retail-cart"), "2.0.0", "canary:6:24h,50%:24h,100%:0h", seed=3
    )
    r = planned.rollout
    assert planned.cohort == 60 - 15 - 1 + 1  # store-3 holds 15; CART00007 is at store-3 too
    assert [s.size for s in r.stages] == [6, 17, 22]  # 50 % of 45, rounded up
    devices = store.devices(r.id)
    serials = {d.serial for d in devices}
    assert "BETA1" not in serials and "CART00007" not in serials and "OLDHW" not in serials
    assert all(d.state == QUEUED and d.site != "store-3" for d in devices)
    canary = [d for d in devices if d.stage == 0]
    assert {d.hw for d in canary} == {"A", "B", "C"} and len({d.site for d in canary}) >= 3
    assert r.state == RUNNING and r.cohort.hw == ("A", "B", "C")
    assert store.rollouts()[0].id == r.id
    # Opting back in brings the device back into the next rollout.
    assert store.opt_in("device", "CART00007") and not store.opt_in("device", "CART00007")
    assert store.opt_in("site", "store-3")
    add_image(platform, tmp_path, "2.1.0")
    again = platform.rollouts.create(CohortSpec("retail-cart", devices=("CART00007",)), "2.1.0")
    assert again.cohort == 1


def test_a_rollout_needing_an_anchor_the_devices_lack_is_refused_naming_them(
    platform: Platform, tmp_path: Path
) -> None:
    add_fleet(platform, fleet(8), anchors=[ANCHOR])
    add_fleet(
        platform,
        [(f"NEW{i}", "acme", "A", "store-1", "1.0.0") for i in range(3)],
        anchors=[ANCHOR, NEW_ANCHOR],
    )
    add_image(platform, tmp_path, requires_trust=[NEW_ANCHOR])
    with pytest.raises(TrustDependencyError) as info:
        platform.rollouts.create(CohortSpec("retail-cart"), "2.0.0")
    assert info.value.devices[:2] == ["CART00000", "CART00001"] and len(info.value.devices) == 8
    assert "8 targeted device(s)" in str(info.value) and "and 3 more" in str(info.value)
    assert platform.rollout_store.rollouts() == []
    # Once the devices acknowledge the anchor (a new hello), the same rollout is accepted.
    add_fleet(platform, [], anchors=[])
    platform.device_state.apply(
        [
            event(
                f"CART{i:05d}",
                2,
                "hello",
                NOW,
                fw="1.0.0",
                capabilities=[],
                trust_anchors=[ANCHOR, NEW_ANCHOR],
            )
            for i in range(8)
        ],
        {r.name: r for r in platform.catalog},
    )
    assert platform.rollouts.create(CohortSpec("retail-cart"), "2.0.0").cohort == 11


def test_the_tracker_follows_reports_and_counts_a_rollback_after_success(
    platform: Platform, tmp_path: Path, clock: Clock
) -> None:
    add_fleet(platform, fleet(12))
    add_image(platform, tmp_path)
    r = platform.rollouts.create(CohortSpec("retail-cart"), "2.0.0", "canary:4:24h,100%:0h").rollout
    monitor = platform.rollout_monitor
    monitor.check()
    canary = [d.serial for d in platform.rollout_store.devices(r.id, [0])]
    assert all(d.state == NOTIFIED for d in platform.rollout_store.devices(r.id, [0]))
    a, b, c, d = canary
    t = NOW + 60
    rid = str(r.id)
    batch = [
        event(a, 10, "ota-status", t, rollout=rid, version="2.0.0", state="downloading"),
        event(a, 11, "ota-status", t, rollout=rid, version="2.0.0", state="verifying"),
        event(a, 12, "ota-status", t, rollout=rid, version="2.0.0", state="installed"),
        event(a, 13, "boot", t + 5, fw="2.0.0", slot="b", previous_fw="1.0.0", rolled_back=False),
        event(
            b,
            10,
            "ota-status",
            t,
            rollout=rid,
            version="2.0.0",
            state="failed",
            reason="hash_mismatch",
        ),
        event(c, 10, "ota-status", t, rollout=rid, version="2.0.0", state="installed"),
        event(c, 11, "boot", t + 5, fw="2.0.0", slot="b", previous_fw="1.0.0", rolled_back=False),
        # d says something its state does not allow: skipped, not raised
        event(d, 10, "boot", t, fw="1.0.0", slot="a", previous_fw=None, rolled_back=False),
    ]
    applied = platform.rollout_tracker.apply(batch)
    assert applied.changed == 3
    again = platform.rollout_tracker.apply(batch)  # replayed: nothing changes
    assert again.changed == 0
    states = {x.serial: x for x in platform.rollout_store.devices(r.id)}
    assert states[a].state == BOOTED and states[a].succeeded and states[a].updated_at == t + 5
    assert states[b].state == FAILED and states[b].reason == "hash_mismatch"
    # c falls back to its old slot three days later, after it had booted clean.
    late = event(
        c, 12, "boot", t + 72 * H, fw="1.0.0", slot="a", previous_fw="2.0.0", rolled_back=True
    )
    platform.rollout_tracker.apply([late])
    assert platform.rollout_store.devices(r.id, [0])[canary.index(c)].state == ROLLED_BACK
    assert platform.rollout_store.rollbacks_by_version() == {("retail-cart", "2.0.0"): (1, 1)}
    # an out-of-order report cannot move a device back
    stale = event(a, 11, "ota-status", t, rollout=rid, version="2.0.0", state="verifying")
    assert platform.rollout_tracker.apply([stale]).changed == 0
    # faults of devices in the rollout become signals, once each
    fault = event(d, 20, "fault", t + 10, code="E42")
    platform.rollout_tracker.apply([fault, fault])
    platform.rollout_tracker.apply([fault])
    assert sorted(platform.rollout_store.signals(r.id, NOW)) == [
        (d, t, "reboot"),  # it booted its old version: a reboot, not an update
        (d, t + 10, "fault"),
    ]
    # an illegal change asked directly is a typed error
    with pytest.raises(IllegalTransitionError, match="booted_clean to notified"):
        platform.rollout_store.notify(r.id, [a], t)


def test_the_tracker_reads_the_event_log_from_its_own_position(
    platform: Platform, tmp_path: Path
) -> None:
    from tether.stream.base import StreamEntry

    add_fleet(platform, fleet(3))
    add_image(platform, tmp_path)
    r = platform.rollouts.create(CohortSpec("retail-cart"), "2.0.0", "canary:3:1h,100%:0h").rollout
    platform.rollout_monitor.check()
    serial = platform.rollout_store.devices(r.id)[0].serial
    e = event(serial, 5, "ota-status", NOW, rollout=r.id, version="2.0.0", state="downloading")
    platform.stream("events").append([StreamEntry(key=e.key, data=e.to_json())])
    assert platform.rollout_tracker.drain() == 1
    assert platform.rollout_tracker.run_once() == 0
    assert platform.rollout_store.devices(r.id)[0].state == "downloading"


def boot_all(p: Platform, serials: list[str], at: float, seq: int = 50) -> None:
    p.rollout_tracker.apply(
        [
            event(s, seq, "boot", at, fw="2.0.0", slot="b", previous_fw="1.0.0", rolled_back=False)
            for s in serials
        ]
    )


def seen(p: Platform, serials: list[str], at: float, seq: int) -> None:
    p.device_state.apply(
        [event(s, seq, "health", at, battery_pct=80) for s in serials],
        {r.name: r for r in p.catalog},
    )


def test_one_sick_revision_halts_the_rollout_until_a_human_releases_it(
    platform: Platform, tmp_path: Path, clock: Clock
) -> None:
    add_fleet(platform, fleet(90))
    add_image(platform, tmp_path)
    r = platform.rollouts.create(
        CohortSpec("retail-cart"), "2.0.0", "canary:12:24h,50%:72h,100%:0h"
    ).rollout
    store, monitor = platform.rollout_store, platform.rollout_monitor
    monitor.check()
    canary = store.devices(r.id, [0])
    boot_all(platform, [d.serial for d in canary], NOW + 60)
    everyone = [d.serial for d in store.devices(r.id)]
    # Day one: everyone reports; the canary soak ends and the next stage starts.
    clock.now = NOW + 25 * H
    seen(platform, everyone, clock.now - 60, 100)
    assert monitor.check() == []
    assert store.get(r.id).current_stage.index == 1  # type: ignore[union-attr]
    # Day four: hw B's updated devices went quiet on day three; A and C are fine.
    clock.now = NOW + 96 * H
    sick = {d.serial for d in canary if d.hw == "B"}
    seen(platform, [s for s in everyone if s not in sick], clock.now - 60, 200)
    reasons = monitor.check()
    assert [(x.rule, x.hw) for x in reasons] == [("survival", "B")]
    halted = store.get(r.id)
    assert halted.state == HALTED and halted.halts[0].hw == "B"
    assert halted.current_stage.index == 1  # type: ignore[union-attr]
    # Held: the soak of stage 2 is long over, but stage 3 does not start.
    clock.now = NOW + 200 * H
    seen(platform, [s for s in everyone if s not in sick], clock.now - 60, 300)
    monitor.check()
    assert store.get(r.id).state == HALTED and store.get(r.id).current_stage.index == 1  # type: ignore[union-attr]
    assert store.counts(r.id)[2][QUEUED] == len(store.devices(r.id, [2]))
    # A human releases it: it goes on, and the same reason does not halt it again at once.
    assert "released" in platform.rollouts.release(r.id)
    monitor.check()
    after = store.get(r.id)
    assert after.state == RUNNING and after.current_stage.index == 2  # type: ignore[union-attr]
    assert store.released_halts(r.id)[0][0].rule == "survival"
    assert store.health(r.id)  # snapshots for status


def test_release_starts_the_next_stage_and_abort_ends_the_rollout(
    platform: Platform, tmp_path: Path, clock: Clock
) -> None:
    add_fleet(platform, fleet(20))
    add_image(platform, tmp_path)
    r = platform.rollouts.create(CohortSpec("retail-cart"), "2.0.0", "canary:2:24h,100%:0h").rollout
    platform.rollout_monitor.check()
    assert "started stage 2" in platform.rollouts.release(r.id)
    with pytest.raises(RolloutError, match="last stage"):
        platform.rollouts.release(r.id)
    boot_all(platform, [d.serial for d in platform.rollout_store.devices(r.id, [0])], NOW)
    assert platform.rollouts.abort(r.id, return_to_previous=True) == 2
    done = platform.rollout_store.get(r.id)
    assert done.state == ABORTED and done.return_to_previous and done.ended_at == NOW
    with pytest.raises(RolloutError, match="aborted"):
        platform.rollouts.abort(r.id)
    with pytest.raises(RolloutError):
        platform.rollouts.release(r.id)
    with pytest.raises(NotFoundError):
        platform.rollout_store.get(999)


def test_devices_are_notified_only_inside_their_sites_window_and_the_rollout_completes(
    platform: Platform, tmp_path: Path, clock: Clock
) -> None:
    add_fleet(platform, fleet(8, sites=2))
    add_image(platform, tmp_path)
    clock.now = 1_800_000_000.0  # 08:00 UTC
    windows = parse_windows(["store-0=22:00-06:00"])
    r = platform.rollouts.create(
        CohortSpec("retail-cart"), "2.0.0", "100%:0h", windows=windows
    ).rollout
    told: list[str] = []
    platform.rollout_monitor.on_notify = lambda _r, serials: told.extend(serials)
    platform.rollout_monitor.check()
    states = {d.serial: d for d in platform.rollout_store.devices(r.id)}
    assert (
        {s for s, d in states.items() if d.state == NOTIFIED}
        == {s for s, d in states.items() if d.site == "store-1"}
        == set(told)
    )
    assert platform.rollout_store.get(r.id).state == RUNNING  # store-0 still waits
    clock.now += 15 * H  # 23:00 UTC
    platform.rollout_monitor.check()
    assert all(d.state == NOTIFIED for d in platform.rollout_store.devices(r.id))
    assert len(told) == 8
    platform.rollout_monitor.check()
    assert platform.rollout_store.get(r.id).state == COMPLETED


def test_reports_for_unknown_devices_are_listed_not_raised(
    platform: Platform, tmp_path: Path
) -> None:
    add_fleet(platform, fleet(2))
    add_image(platform, tmp_path)
    r = platform.rollouts.create(CohortSpec("retail-cart"), "2.0.0", "100%:0h").rollout
    applied = platform.rollout_store.apply([Report("NOPE", "downloading", NOW, r.id)])
    assert applied.changed == 0 and "NOPE" in applied.ignored[0]


def test_a_device_refusing_a_forged_manifest_is_a_security_event(
    platform: Platform, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    add_fleet(platform, fleet(3))
    add_image(platform, tmp_path)
    r = platform.rollouts.create(CohortSpec("retail-cart"), "2.0.0", "100%:0h").rollout
    platform.rollout_monitor.check()
    first, second, _ = (d.serial for d in platform.rollout_store.devices(r.id))
    status = {"rollout": str(r.id), "version": "2.0.0", "state": "failed"}
    with caplog.at_level(logging.WARNING, logger="tether.rollouts.tracker"):
        platform.rollout_tracker.apply(
            [
                event(first, 10, "ota-status", NOW + 60, **status, reason="bad_signature"),
                event(second, 10, "ota-status", NOW + 60, **status, reason="hash_mismatch"),
            ]
        )
    warned = [m for m in caplog.messages if m.startswith("security event")]
    assert len(warned) == 1 and first in warned[0] and "trust anchor" in warned[0]


def test_the_monitor_drops_signals_no_rule_reads(
    platform: Platform, tmp_path: Path, clock: Clock
) -> None:
    add_fleet(platform, fleet(3))
    add_image(platform, tmp_path)
    r = platform.rollouts.create(CohortSpec("retail-cart"), "2.0.0", "100%:24h").rollout
    store = platform.rollout_store
    store.add_signals([(r.id, "CART00000", NOW - 8 * 86400, "fault")])
    store.add_signals([(r.id, "CART00001", NOW - 60, "reboot")])
    platform.rollout_monitor.check()
    assert [serial for serial, _, _ in store.signals(r.id, 0)] == ["CART00001"]
