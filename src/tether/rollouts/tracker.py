"""The tracker: from accepted events to devices' update states and the halt rules' signals.

A consumer of the event log like the projector, with its own position
(``rollouts``). It reads:

- ``ota-status`` v1 ``{rollout, version, state, reason}``: downloading,
  verifying, installed, failed (with its reason; a ``bad_signature`` refusal is
  also logged as a security event);
- ``boot`` v1 ``{fw, slot, previous_fw, rolled_back}``: the target version
  booted clean, or ``rolled_back`` after trying it (also after it had booted
  clean: the rollback is recorded and counted against the target version). Any
  other boot of a device in a live rollout is a reboot, a signal for the
  fault-rate rule;
- faults: records of type ``fault``, and records whose body names a ``fault``
  (the power tool's telemetry), also signals.

Reports a device's state does not allow (out of order, replayed) are skipped and
logged, never raised: one odd record must not stop the loop. Applying a batch
twice changes nothing, so a crash between applying and committing the position
is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tether.firmware.verify import Refusal
from tether.gate.submission import AcceptedEvent
from tether.rollouts.health import FAULT, REBOOT
from tether.rollouts.model import (
    BOOTED,
    FAILED,
    REPORTED_STATES,
    RETURNED,
    RETURNING,
    ROLLED_BACK,
)
from tether.rollouts.store import Applied, Report, RolloutStore
from tether.stream.base import Stream

CONSUMER = "rollouts"
STATUS_TYPE = "ota-status"
FAULT_TYPES = frozenset({"fault"})

log = logging.getLogger(__name__)


def reports_and_signals(
    events: Sequence[AcceptedEvent], store: RolloutStore
) -> tuple[list[Report], list[tuple[int, str, float, str]]]:
    """What a batch of accepted events says about rollouts."""
    interesting = [
        e for e in events if e.type in (STATUS_TYPE, "boot") or e.type in FAULT_TYPES or _faulty(e)
    ]
    if not interesting:
        return [], []
    targets = store.targets({e.serial for e in interesting})
    reports: list[Report] = []
    signals: list[tuple[int, str, float, str]] = []
    for e in interesting:
        at = e.arrival / 1000
        target = targets.get(e.serial)
        if e.type == STATUS_TYPE:
            rid = _rollout_id(e.body.get("rollout"))
            state = e.body.get("state")
            if rid is None or state not in REPORTED_STATES:
                continue
            reason = e.body.get("reason")
            reports.append(
                Report(e.serial, str(state), at, rid, str(reason)[:200] if reason else None, e.seq)
            )
            continue
        if target is None:
            continue
        if e.type == "boot":
            rolled_back = e.body.get("rolled_back") is True
            if target.state == RETURNING:
                if not rolled_back and e.body.get("fw") != target.version:
                    reports.append(Report(e.serial, RETURNED, at, target.rollout_id, None, e.seq))
            elif rolled_back and (
                target.version in (e.body.get("previous_fw"), e.body.get("fw"))
                or target.state in (BOOTED, "installed")
            ):
                reports.append(
                    Report(
                        e.serial, ROLLED_BACK, at, target.rollout_id, "rolled back at boot", e.seq
                    )
                )
            elif e.body.get("fw") == target.version and target.state != BOOTED:
                reports.append(Report(e.serial, BOOTED, at, target.rollout_id, None, e.seq))
            elif target.live and not (e.seq is not None and e.seq == target.report_seq):
                # (the boot that reported the new version, replayed, is no reboot)
                signals.append((target.rollout_id, e.serial, at, REBOOT))
        elif target.live:
            signals.append((target.rollout_id, e.serial, at, FAULT))
    return reports, signals


def _faulty(e: AcceptedEvent) -> bool:
    fault = e.body.get("fault")
    return isinstance(fault, str) and bool(fault)


def _rollout_id(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class RolloutTracker:
    """Folds the event log into rollouts' per-device states, batch by batch."""

    def __init__(self, events: Stream, store: RolloutStore) -> None:
        self.events = events
        self.store = store

    def apply(self, events: Sequence[AcceptedEvent]) -> Applied:
        reports, signals = reports_and_signals(events, self.store)
        for r in reports:
            if r.state == FAILED and (r.reason or "").startswith(Refusal.BAD_SIGNATURE.value):
                # Someone handed the device an image it could not trust: a security event.
                log.warning(
                    "security event: %s refused an update of rollout %s whose manifest no "
                    "firmware trust anchor it carries signed (%s)",
                    r.serial,
                    r.rollout_id,
                    r.reason,
                )
        applied = self.store.apply(reports)
        self.store.add_signals(signals)
        for why in applied.ignored[:10]:
            log.info("rollout report skipped: %s", why)
        return applied

    def run_once(self, limit: int = 1000) -> int:
        """Track the next batch of the event log; return how many events it held."""
        entries = self.events.read(self.events.position(CONSUMER), limit)
        if not entries:
            return 0
        self.apply([AcceptedEvent.from_bytes(e.data) for e in entries])
        self.events.commit(CONSUMER, entries[-1].offset)
        return len(entries)

    def drain(self, limit: int = 1000) -> int:
        total = 0
        while done := self.run_once(limit):
            total += done
        return total
