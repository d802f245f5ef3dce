"""What the fleet looks like right now: presence, ingestion outcomes, gaps, recent rejects.

``FleetView`` reads the platform's stores and streams, never a front door's
memory, so ``tether demo``, the ``/v1/fleet`` route and a dashboard show the
same numbers:

- presence: devices per class and site that sent anything landed within the
  window (device state's last arrival), and how many of them were ever seen;
- outcomes: accepted records are the event log's length, rejected ones the
  dead-letter stream's (both platform-wide, whichever process judged them);
  duplicates are counted by this process's front-door gate (replays left out),
  the only outcome no stream keeps;
- per-second rates between two snapshots of the same view, over real time;
- gaps: devices missing records, records lost (overwritten on the device) and
  pending, counted again for every device when the projector has moved since,
  at most every ``gaps_every`` seconds (it reads every device's sequence numbers);
- the latest rejects with their codes, and how many records were refused as
  forgeries (``bad_signature``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tether.contract.codes import BAD_SIGNATURE
from tether.platform import Platform
from tether.projections.gaps import find_gaps
from tether.projections.projector import CONSUMER as PROJECTOR

NO_SITE = "-"  # for devices whose records named no site yet (a brush never does)


@dataclass(frozen=True)
class Presence:
    device_class: str
    site: str
    online: int
    seen: int


@dataclass(frozen=True)
class RecentReject:
    serial: str
    code: str
    detail: str
    seq: int | None
    door: str
    arrival: int  # ms, platform time


@dataclass(frozen=True)
class FleetSnapshot:
    at: float  # platform time (seconds)
    window: float  # seconds: "online" means landed something within it
    presence: list[Presence]
    accepted: int
    duplicates: int
    rejected: int
    rates: dict[str, float]  # accepted, duplicates, rejected per real second
    devices_with_gaps: int
    lost: int
    pending: int
    forgeries_refused: int
    rejects_by_code: dict[str, int]
    recent_rejects: list[RecentReject] = field(default_factory=list)

    def online(self, device_class: str | None = None) -> int:
        return sum(
            p.online
            for p in self.presence
            if device_class is None or p.device_class == device_class
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FleetView:
    """Snapshots of one platform; keeps what it needs for rates and gaps between them."""

    def __init__(
        self,
        platform: Platform,
        window: float = 900.0,
        gaps_every: float = 5.0,
        recent: int = 8,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.platform = platform
        self.window = window
        self.gaps_every = gaps_every
        self.recent = recent
        self._monotonic = monotonic
        self._last: tuple[float, int, int, int] | None = None  # real time, the three totals
        self._gaps_at: float | None = None
        self._gaps_projected = -1  # the projector's position when gaps were counted
        self._gaps = (0, 0, 0)

    def snapshot(self) -> FleetSnapshot:
        p = self.platform
        now = p.clock()
        events = p.stream("events")
        totals = (
            events.last_offset(),
            p.gate.duplicates,  # the front doors' gate: device traffic, not replays
            p.stream("dead-letter").last_offset(),
        )
        real = self._monotonic()
        rates = {"accepted": 0.0, "duplicates": 0.0, "rejected": 0.0}
        if self._last is not None and real > self._last[0]:
            span = real - self._last[0]
            for name, new, old in zip(rates, totals, self._last[1:], strict=True):
                rates[name] = max(0, new - old) / span
        self._last = (real, *totals)
        projected = events.position(PROJECTOR)
        due = self._gaps_at is None or real - self._gaps_at >= self.gaps_every
        if projected != self._gaps_projected and due:
            self._gaps, self._gaps_at, self._gaps_projected = self._count_gaps(), real, projected
        by_code: Counter[str] = Counter()
        for count in p.rejects.counts():
            by_code[count.code] += count.count
        recent = [
            RecentReject(r.serial, r.code, r.detail, r.seq, r.door, r.arrival)
            for r in p.rejects.latest(self.recent)
        ]
        return FleetSnapshot(
            at=now,
            window=self.window,
            presence=self._presence(now),
            accepted=totals[0],
            duplicates=totals[1],
            rejected=totals[2],
            rates=rates,
            devices_with_gaps=self._gaps[0],
            lost=self._gaps[1],
            pending=self._gaps[2],
            forgeries_refused=by_code[BAD_SIGNATURE],
            rejects_by_code=dict(by_code.most_common()),
            recent_rejects=recent,
        )

    def _presence(self, now: float) -> list[Presence]:
        rows = self.platform.device_state.presence(int((now - self.window) * 1000))
        return [
            Presence(cls or "?", site or NO_SITE, online, seen) for cls, site, online, seen in rows
        ]

    def _count_gaps(self) -> tuple[int, int, int]:
        """Devices with gaps, records lost and pending, over every device that sent any."""
        p = self.platform
        devices = lost = pending = 0
        for serial, lowest in p.device_state.lowest_held().items():
            gaps = find_gaps(p.telemetry.seqs(serial), lowest)
            if gaps.lost or gaps.pending:
                devices += 1
                lost += gaps.lost_count
                pending += gaps.pending_count
        return devices, lost, pending
