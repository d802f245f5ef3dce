"""Households: people who brush, their brushes, and the one phone whose app relays them.

Each person brushes by their own habits (a morning and an evening session,
sometimes skipped, sometimes a third at midday), fits a new head now and then
and charges the brush by habit. Around each brushing the phone may be in range
and the app may be open; only then does it connect, to every brush of the
household it can reach. Away from the brushes the app is opened now and then,
and uploads what it holds if it has a network.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial

from tether.sim.brush import DAY, Brush, BrushHabits
from tether.sim.engine import Engine
from tether.sim.phone import Phone

HOUR = 3600.0
HEAD_LIFE_DAYS = 90.0


def local_midnight(t: float, utc_offset: float) -> float:
    """The start of the local day holding ``t``."""
    return (t + utc_offset) // DAY * DAY - utc_offset


def _at_hour(
    rng: random.Random, midnight: float, mean_h: float, sd_h: float, lo: float, hi: float
) -> float:
    return midnight + max(lo, min(hi, rng.gauss(mean_h, sd_h))) * HOUR


def brushing_times(rng: random.Random, habits: BrushHabits, midnight: float) -> list[float]:
    """When one person brushes on the day starting at ``midnight``, by habit."""
    times = []
    if rng.random() < habits.morning:
        times.append(_at_hour(rng, midnight, 7.25, 0.6, 5.0, 11.0))
    if rng.random() < habits.midday:
        times.append(_at_hour(rng, midnight, 13.5, 1.5, 11.0, 17.0))
    if rng.random() < habits.evening:
        times.append(_at_hour(rng, midnight, 21.75, 0.8, 18.0, 23.9))
    return times


@dataclass
class Household:
    name: str
    phone: Phone
    brushes: list[Brush]
    engine: Engine
    rng: random.Random
    utc_offset: float
    end: float
    new: bool  # unboxed during the run (else in service already)

    def begin(self, now: float) -> None:
        midnight = local_midnight(now, self.utc_offset)
        for brush in self.brushes:
            self._plan_day(brush, midnight, now)
        self._plan_elsewhere(midnight, now)
        if self.new:
            unboxing = now + self.rng.uniform(0.05, 1.0) * DAY
            self.engine.at(unboxing, self._unboxing)

    # one person's day
    def _plan_day(self, brush: Brush, midnight: float, now: float) -> None:
        rng = self.rng
        for t in brushing_times(rng, brush.habits, midnight):
            if now <= t < self.end:
                self.engine.at(t, partial(self._brushing, brush))
        if rng.random() < 1.0 / HEAD_LIFE_DAYS:
            t = midnight + rng.uniform(8.0, 22.0) * HOUR
            if now <= t < self.end:
                self.engine.at(t, partial(self._new_head, brush))
        tomorrow = midnight + DAY
        if tomorrow < self.end:
            self.engine.at(tomorrow, lambda: self._plan_day(brush, tomorrow, tomorrow))

    def _new_head(self, brush: Brush) -> None:
        brush.new_head(self.engine.now)

    def _brushing(self, brush: Brush) -> None:
        now = self.engine.now
        record = brush.brush(now)
        self._plan_charge(brush, now)
        if record is None:
            return
        if (
            self.rng.random() < self.phone.habits.near
            and self.rng.random() < self.phone.habits.app_open
        ):
            done = now + float(record.body["duration_s"]) + self.rng.uniform(2.0, 30.0)
            self.engine.at(done, self._contact)

    def _plan_charge(self, brush: Brush, now: float) -> None:
        due = brush.charge_plan(now)
        if due is not None:
            self.engine.at(due, lambda: brush.charge(self.engine.now))

    # the phone
    def _contact(self, window: float | None = None) -> None:
        span = self.rng.uniform(60.0, 300.0) if window is None else window
        self.phone.contact(self.engine.now, self.brushes, span)

    def _unboxing(self) -> None:
        """New brushes out of the box: the app is open, the owner pairs and syncs."""
        self.phone.ledger.count("phone.unboxings")
        self._contact(600.0)

    def _plan_elsewhere(self, midnight: float, now: float) -> None:
        if self.rng.random() < self.phone.habits.elsewhere:
            t = midnight + self.rng.uniform(8.0, 23.0) * HOUR
            if now <= t < self.end:
                self.engine.at(t, lambda: self.phone.open_elsewhere(self.engine.now))
        tomorrow = midnight + DAY
        if tomorrow < self.end:
            self.engine.at(tomorrow, lambda: self._plan_elsewhere(tomorrow, tomorrow))


def age(brush: Brush, rng: random.Random, start: float, days: float, utc_offset: float) -> None:
    """Live ``days`` of the brush's life before ``start`` (an earlier phone kept its clock)."""
    if days <= 0:
        return
    born = start - days * DAY
    brush.rtc.set(born)
    brush.battery, brush._battery_at = 100.0, born
    midnight = local_midnight(born, utc_offset)
    while midnight < start:
        for t in brushing_times(rng, brush.habits, midnight):
            if not born <= t < start:
                continue
            if brush.charge_due is not None and brush.charge_due <= t:
                brush.charge(brush.charge_due)
            brush.brush(t)
            brush.charge_plan(t)
        midnight += DAY
    if brush.charge_due is not None and brush.charge_due <= start:
        brush.charge(brush.charge_due)
    brush.charge_due = None
