"""Every halt rule fires on what it guards against, and stays quiet otherwise."""

from __future__ import annotations

from tether.rollouts.health import FAULT, REBOOT, HaltPolicy, Signal, evaluate, health_by_hw
from tether.rollouts.model import BOOTED, FAILED, NOTIFIED, QUEUED, ROLLED_BACK, DeviceUpdate

NOW = 1_000_000.0
H = 3600.0


def dev(
    serial: str, hw: str, state: str, updated: float | None = None, **kw: object
) -> DeviceUpdate:
    return DeviceUpdate(serial, 0, hw, "s1", "1.0", state, updated_at=updated, **kw)  # type: ignore[arg-type]


def mixed(n_new: int = 30, n_old: int = 300) -> list[DeviceUpdate]:
    new = [dev(f"N{i}", "ABC"[i % 3], BOOTED, NOW - 80 * H, succeeded=True) for i in range(n_new)]
    old = [dev(f"O{i}", "ABC"[i % 3], QUEUED) for i in range(n_old)]
    return new + old


def seen_all(devices: list[DeviceUpdate], when: float = NOW - 60) -> dict[str, float]:
    return {d.serial: when for d in devices}


def rules(reasons: list) -> list[str]:  # type: ignore[type-arg]
    return [r.rule for r in reasons]


def test_a_healthy_rollout_raises_nothing() -> None:
    devices = mixed()
    signals: list[Signal] = [(f"O{i}", NOW - 60, FAULT) for i in range(30)]
    signals += [("N1", NOW - 60, FAULT)]
    assert evaluate(devices, seen_all(devices), signals, NOW) == []


def test_fault_rate_above_one_and_a_half_times_the_old_version_halts() -> None:
    devices = mixed()
    old = [(f"O{i}", NOW - 60, FAULT) for i in range(30)]  # 0.1 per device
    new_ok = [(f"N{i}", NOW - 60, REBOOT) for i in range(4)]  # 0.133: under 0.15
    assert rules(evaluate(devices, seen_all(devices), old + new_ok, NOW)) == []
    new_bad = [(f"N{i}", NOW - 60, REBOOT) for i in range(6)]  # 0.2: over 0.15
    found = evaluate(devices, seen_all(devices), old + new_bad, NOW)
    assert rules(found) == ["fault_rate"] and "1.5x" in found[0].detail
    stale = [(f"N{i}", NOW - 3600, FAULT) for i in range(20)]  # outside the 30 minutes
    assert rules(evaluate(devices, seen_all(devices), old + stale, NOW)) == []
    off = HaltPolicy(fault_ratio=0)
    assert rules(evaluate(devices, seen_all(devices), old + new_bad, NOW, off)) == []


def test_any_rollback_halts_even_after_success() -> None:
    devices = mixed()
    assert rules(evaluate(devices, seen_all(devices), [], NOW)) == []
    devices[0] = dev("N0", "A", ROLLED_BACK, NOW - 80 * H, succeeded=True)
    found = evaluate(devices, seen_all(devices), [], NOW)
    assert "rollback" in rules(found)
    assert "1 after booting the new one clean" in found[rules(found).index("rollback")].detail


def test_one_sick_revision_halts_while_the_others_are_fine() -> None:
    devices = mixed()
    seen = seen_all(devices)
    for d in devices:
        if d.updated_at is not None and d.hw == "B":
            seen[d.serial] = NOW - 20 * H  # went quiet 60 h after its update
    found = evaluate(devices, seen, [], NOW)
    assert rules(found) == ["survival"] and found[0].hw == "B"
    health = health_by_hw(devices, seen, NOW)
    assert health["A"].share == 1.0 and health["C"].share == 1.0 and health["B"].share == 0.0
    # A device that reported past 72 hours and stopped later counts as having made it.
    late = {
        **seen,
        **{d.serial: d.updated_at + 73 * H for d in devices if d.updated_at and d.hw == "B"},
    }  # type: ignore[operator]
    assert evaluate(devices, late, [], NOW) == []


def test_survival_is_judged_against_the_old_version_of_the_same_revision() -> None:
    devices = mixed()
    seen = seen_all(devices)
    for d in devices:
        if d.hw == "C":
            seen[d.serial] = NOW - 20 * H  # the whole revision is quiet (it sleeps): not the image
    assert evaluate(devices, seen, [], NOW) == []
    few = mixed(n_new=2)  # too few updated devices to judge
    seen = {d.serial: (NOW - 60 if d.updated_at is None else NOW - 20 * H) for d in few}
    assert evaluate(few, seen, [], NOW) == []


def test_transfer_failures_above_the_threshold_halt() -> None:
    attempted = [dev(f"T{i}", "A", NOTIFIED) for i in range(100)]
    some = [dev(f"F{i}", "A", FAILED, reason="hash_mismatch") for i in range(5)]
    assert rules(evaluate(attempted + some, {}, [], NOW)) == []  # 5 of 105: under 5 %
    more = [dev(f"F{i}", "A", FAILED, reason="timeout") for i in range(10)]
    found = evaluate(attempted + more, {}, [], NOW)
    assert rules(found) == ["transfer"] and "timeout" in found[0].detail
