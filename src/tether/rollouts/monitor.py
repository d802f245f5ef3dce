"""The monitor: evaluates halt rules continuously and moves live rollouts along.

On each pass, for every live rollout:

1. a rollout with no stage started starts its first;
2. the halt rules run over current data (:func:`tether.rollouts.health.evaluate`);
   a reason halts the rollout and is recorded. A halt a human released stays
   quiet for ``release_grace_s`` (the rollback rule: until another device rolls
   back), so a release is not undone on the next pass;
3. a running rollout notifies its started stages' queued devices that are inside
   their site's maintenance window (``on_notify`` hands them to delivery);
4. a running stage whose minimum soak has passed is followed by the next stage;
   the last one completes the rollout once no device waits to be notified;
5. health per hardware revision is recorded every ``snapshot_s``, for status;
6. once an hour, faults and reboots older than ``signals_kept_s`` are dropped.

An aborted rollout marked ``return_to_previous`` sends its devices still on the
new version (of the revisions named, if any) back to the version each came from
(``on_return`` makes the jobs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from tether.rollouts.health import HaltPolicy, evaluate, health_by_hw
from tether.rollouts.model import (
    ABORTED,
    COMPLETED,
    HALTED,
    ON_NEW,
    QUEUED,
    RETURNING,
    ROLLED_BACK,
    RUNNING,
    DeviceUpdate,
    HaltReason,
    Rollout,
)
from tether.rollouts.plan import Window, may_notify
from tether.rollouts.store import RolloutStore

log = logging.getLogger(__name__)

Notify = Callable[[Rollout, Sequence[str]], None]
# Devices of an aborted rollout to send back to their previous version; returns
# those a job could be made for (their previous version is in the catalog).
SendBack = Callable[[Rollout, Sequence[DeviceUpdate]], list[str]]


class RolloutMonitor:
    def __init__(
        self,
        store: RolloutStore,
        clock: Callable[[], float],
        on_notify: Notify | None = None,
        on_return: SendBack | None = None,
        interval_s: float = 30.0,
        snapshot_s: float = 3600.0,
        release_grace_s: float = 24 * 3600.0,
        signals_kept_s: float = 7 * 86400.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.on_notify = on_notify
        self.on_return = on_return
        self.interval_s = interval_s
        self.snapshot_s = snapshot_s
        self.release_grace_s = release_grace_s
        # Faults and reboots older than this no rule reads (the fault window is minutes).
        self.signals_kept_s = signals_kept_s
        self._trimmed_at = float("-inf")
        self._last_pass = float("-inf")
        self._snapshots: dict[int, float] = {}

    def run_once(self) -> int:
        """For a worker loop: a pass every ``interval_s`` (returns 0, so the loop idles)."""
        now = self.clock()
        if now - self._last_pass >= self.interval_s:
            self._last_pass = now
            self.check()
        return 0

    def check(self) -> list[HaltReason]:
        """One pass over every live rollout; returns the new halt reasons."""
        halted: list[HaltReason] = []
        for rollout in self.store.rollouts([RUNNING, HALTED]):
            try:
                halted += self.check_rollout(rollout)
            except Exception:
                log.exception("rollout %d: monitor pass failed", rollout.id)
        now = self.clock()
        if now - self._trimmed_at >= 3600:
            self._trimmed_at = now
            self.store.trim_signals(now - self.signals_kept_s)
        if self.on_return is not None:
            for rollout in self.store.rollouts([ABORTED]):
                if rollout.return_to_previous:
                    self.send_back(rollout)
        return halted

    def send_back(self, rollout: Rollout) -> list[str]:
        """Devices of an aborted rollout still on its version: their previous one's jobs."""
        wanted = rollout.return_hw
        on_new = [
            d for d in self.store.devices(rollout.id, states=ON_NEW) if not wanted or d.hw in wanted
        ]
        if not on_new or self.on_return is None:
            return []
        sent = self.on_return(rollout, on_new)
        moved = self.store.move(rollout.id, sent, RETURNING, self.clock())
        if moved:
            log.info("rollout %d: sending %d devices back to their version", rollout.id, len(moved))
        return moved

    def check_rollout(self, rollout: Rollout) -> list[HaltReason]:
        now = self.clock()
        rid = rollout.id
        if rollout.current_stage is None and rollout.state == RUNNING:
            self.store.start_stage(rid, 0, now)
            rollout = self.store.get(rid)
        current = rollout.current_stage
        started = [] if current is None else list(range(current.index + 1))
        devices = self.store.devices(rid, started)
        # The halt rules compare against the rollout's devices still on the old version,
        # later stages' included: once a stage has updated, its own devices leave no baseline.
        everyone = self.store.devices(rid)
        policy = HaltPolicy.from_dict(rollout.policy)
        policy = self._after_release(rid, policy, devices_rolled_back(devices), now)
        last_seen = self.store.last_seen(rid)
        signals = self.store.signals(rid, now - policy.fault_window_s)
        reasons = evaluate(everyone, last_seen, signals, now, policy)
        reasons = [r for r in reasons if not self._quiet(rid, r, now)]
        if reasons:
            known = {(h.rule, h.hw) for h in rollout.halts}
            new = [r for r in reasons if (r.rule, r.hw) not in known]
            if new or rollout.state != HALTED:
                self.store.halt(rid, reasons)
                for r in new:
                    log.warning("rollout %d halted: %s: %s", rid, r.rule, r.detail)
            self._snapshot(rid, everyone, last_seen, now, policy)
            return new
        if rollout.state == RUNNING and current is not None:
            self._notify(rollout, [d.serial for d in devices if d.state == QUEUED], now)
            if current.started_at is not None and now >= current.started_at + current.stage.soak_s:
                if current.index + 1 < len(rollout.stages):
                    self.store.start_stage(rid, current.index + 1, now)
                elif not any(d.state == QUEUED for d in self.store.devices(rid, [current.index])):
                    self.store.finish(rid, COMPLETED, now)
        self._snapshot(rid, everyone, last_seen, now, policy)
        return []

    def _after_release(
        self, rid: int, policy: HaltPolicy, rolled_back: int, now: float
    ) -> HaltPolicy:
        if any(r.rule == "rollback" for r, _ in self.store.released_halts(rid)):
            return HaltPolicy.from_dict(
                {**policy.to_dict(), "rollback_max": max(policy.rollback_max, rolled_back)}
            )
        return policy

    def _quiet(self, rid: int, reason: HaltReason, now: float) -> bool:
        if reason.rule == "rollback":
            return False  # handled by raising rollback_max at release
        return any(
            r.rule == reason.rule and r.hw == reason.hw and now - at < self.release_grace_s
            for r, at in self.store.released_halts(rid)
        )

    def _notify(self, rollout: Rollout, queued: list[str], now: float) -> None:
        if not queued:
            return
        windows = {site: Window.parse(text) for site, text in rollout.windows.items()}
        sites = {d.serial: d.site for d in self.store.devices(rollout.id) if d.state == QUEUED}
        due = [s for s in queued if may_notify(sites.get(s), windows, now)]
        if not due:
            return
        moved = self.store.notify(rollout.id, due, now)
        if moved and self.on_notify is not None:
            self.on_notify(rollout, moved)

    def _snapshot(
        self,
        rid: int,
        devices: Sequence[DeviceUpdate],
        last_seen: dict[str, float],
        now: float,
        policy: HaltPolicy,
    ) -> None:
        if now - self._snapshots.get(rid, float("-inf")) < self.snapshot_s:
            return
        self._snapshots[rid] = now
        health = health_by_hw(devices, last_seen, now, policy)
        self.store.record_health(
            rid, now, [(h.hw, h.updated, h.reporting, h.baseline) for h in health.values()]
        )


def devices_rolled_back(devices: Sequence[object]) -> int:
    return sum(1 for d in devices if getattr(d, "state", None) == ROLLED_BACK)
