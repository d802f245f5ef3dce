"""Halt rules: pure functions over a rollout's current data.

:func:`evaluate` returns the reasons to halt (empty when the fleet looks well).
The rules and their defaults (:class:`HaltPolicy`):

- ``fault_rate``: faults and reboots per device, over the last 30 minutes, of
  devices on the new version above 1.5 times that of the cohort's devices still on
  the old one (and at least 3 such events, so one fault on a small canary is
  not a rate);
- ``rollback``: any device that fell back to its old slot;
- ``survival``: per hardware revision, the share of updated devices still
  reporting 72 hours after their update (or now, before then) below the share of
  the same revision's devices on the old version still reporting, by more than
  0.10; a device is reporting when it was seen within 6 hours of that moment;
- ``transfer``: failed updates above 5 % of those attempted (and at least 3).

A number set to 0 turns its rule off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields

from tether.rollouts.model import (
    BOOTED,
    FAILED,
    ON_NEW,
    QUEUED,
    ROLLED_BACK,
    DeviceUpdate,
    HaltReason,
)

FAULT = "fault"
REBOOT = "reboot"
Signal = tuple[str, float, str]  # (serial, when in seconds, FAULT or REBOOT)


@dataclass(frozen=True)
class HaltPolicy:
    fault_ratio: float = 1.5
    fault_window_s: float = 1800
    fault_min_events: float = 3
    rollback_max: float = 0  # rollbacks tolerated before halting (0: the first halts)
    rollback_rule: float = 1  # 0 turns the rollback rule off
    survival_horizon_s: float = 72 * 3600
    survival_silence_s: float = 6 * 3600
    survival_margin: float = 0.10
    survival_min_devices: float = 3
    transfer_max_share: float = 0.05
    transfer_min_failures: float = 3

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, float]) -> HaltPolicy:
        known = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in data.items() if k in known})


@dataclass(frozen=True)
class RevisionHealth:
    hw: str
    updated: int
    reporting: int
    baseline: float | None  # share of the old version still reporting, None: nobody to compare

    @property
    def share(self) -> float | None:
        return self.reporting / self.updated if self.updated else None


def health_by_hw(
    devices: Sequence[DeviceUpdate],
    last_seen: Mapping[str, float],
    now: float,
    policy: HaltPolicy = HaltPolicy(),
) -> dict[str, RevisionHealth]:
    """Per hardware revision: devices updated, how many still report, the old version's share."""
    silence, horizon = policy.survival_silence_s, policy.survival_horizon_s
    updated: dict[str, list[int]] = {}
    old: dict[str, list[int]] = {}
    for d in devices:
        seen = last_seen.get(d.serial)
        if d.updated_at is not None and d.state in ON_NEW | {ROLLED_BACK}:
            moment = min(now, d.updated_at + horizon)
            ok = seen is not None and seen >= moment - silence and d.state != ROLLED_BACK
            tally = updated.setdefault(d.hw, [0, 0])
            tally[0] += 1
            tally[1] += ok
        elif d.updated_at is None and seen is not None:
            tally = old.setdefault(d.hw, [0, 0])
            tally[0] += 1
            tally[1] += seen >= now - silence
    everyone = [sum(t[0] for t in old.values()), sum(t[1] for t in old.values())]
    out = {}
    for hw in sorted(updated):
        base = old.get(hw, [0, 0])
        if base[0] < policy.survival_min_devices:
            base = everyone
        share = base[1] / base[0] if base[0] else None
        out[hw] = RevisionHealth(hw, updated[hw][0], updated[hw][1], share)
    return out


def evaluate(
    devices: Sequence[DeviceUpdate],
    last_seen: Mapping[str, float],
    signals: Iterable[Signal],
    now: float,
    policy: HaltPolicy = HaltPolicy(),
) -> list[HaltReason]:
    """Every reason to halt the rollout these devices belong to, given what is known now."""
    reasons: list[HaltReason] = []
    if policy.fault_ratio > 0:
        reasons += _fault_rate(devices, signals, now, policy)
    if policy.rollback_rule > 0:
        reasons += _rollbacks(devices, now, policy)
    if policy.survival_margin > 0:
        for h in health_by_hw(devices, last_seen, now, policy).values():
            share = h.share
            if share is None or h.baseline is None or h.updated < policy.survival_min_devices:
                continue
            if share < h.baseline - policy.survival_margin:
                reasons.append(
                    HaltReason(
                        "survival",
                        f"hw {h.hw}: {h.reporting} of {h.updated} updated devices still "
                        f"reporting ({share:.0%}) against {h.baseline:.0%} on the old version",
                        now,
                        h.hw,
                    )
                )
    if policy.transfer_max_share > 0:
        reasons += _transfers(devices, now, policy)
    return reasons


def _fault_rate(
    devices: Sequence[DeviceUpdate], signals: Iterable[Signal], now: float, policy: HaltPolicy
) -> list[HaltReason]:
    by_serial = {d.serial: d for d in devices}
    on_new = sum(1 for d in devices if d.state == BOOTED)
    on_old = len(devices) - on_new
    new_events = old_events = 0
    since = now - policy.fault_window_s
    for serial, when, _kind in signals:
        d = by_serial.get(serial)
        if d is None or when < since or when > now:
            continue
        if d.state == BOOTED and d.updated_at is not None and when >= d.updated_at:
            new_events += 1
        elif d.state != BOOTED:
            old_events += 1
    if not on_new or new_events < policy.fault_min_events:
        return []
    new_rate = new_events / on_new
    old_rate = old_events / on_old if on_old else 0.0
    if new_rate <= policy.fault_ratio * old_rate:
        return []
    minutes = policy.fault_window_s / 60
    return [
        HaltReason(
            "fault_rate",
            f"faults and reboots over {minutes:g} min: {new_rate:.3f} per device on the new "
            f"version ({new_events} on {on_new}) against {old_rate:.3f} on the old "
            f"({old_events} on {on_old}); the limit is {policy.fault_ratio:g}x",
            now,
        )
    ]


def _rollbacks(devices: Sequence[DeviceUpdate], now: float, policy: HaltPolicy) -> list[HaltReason]:
    back = [d for d in devices if d.state == ROLLED_BACK]
    if len(back) <= policy.rollback_max:
        return []
    hws = sorted({d.hw for d in back})
    after = sum(1 for d in back if d.succeeded)
    return [
        HaltReason(
            "rollback",
            f"{len(back)} device(s) rolled back to the old version ({after} after booting the "
            f"new one clean), hw {', '.join(hws)}: {', '.join(d.serial for d in back[:5])}",
            now,
            hws[0] if len(hws) == 1 else None,
        )
    ]


def _transfers(devices: Sequence[DeviceUpdate], now: float, policy: HaltPolicy) -> list[HaltReason]:
    attempted = [d for d in devices if d.state != QUEUED]
    failed = [d for d in attempted if d.state == FAILED]
    if len(failed) < policy.transfer_min_failures or not attempted:
        return []
    share = len(failed) / len(attempted)
    if share <= policy.transfer_max_share:
        return []
    why = sorted({d.reason or "unknown" for d in failed})
    return [
        HaltReason(
            "transfer",
            f"{len(failed)} of {len(attempted)} attempted updates failed ({share:.0%}, limit "
            f"{policy.transfer_max_share:.0%}): {', '.join(why[:5])}",
            now,
        )
    ]


__all__ = ["BOOTED", "FAULT", "REBOOT", "HaltPolicy", "RevisionHealth", "evaluate", "health_by_hw"]
