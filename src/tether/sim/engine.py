"""The event loop of the simulated world.

Devices schedule what they will do (``at``, ``after``); the engine runs those
actions in time order on one thread, holding the shared clock at each action's
time. Network threads (the MQTT hub) never touch a device: they ``post`` what
happened (an acknowledgement, a message) and the engine runs it between events.

A *hold* keeps the clock from passing a time while something real is still
under way: a record published on a live MQTT connection must be acknowledged
within the link's latency, so the clock waits for the broker instead of letting
simulated minutes pass in a few real milliseconds. A hold that never clears is
a stalled front door, reported as a :class:`SimulationError`.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tether.sim.clock import SimClock
from tether.sim.errors import SimulationError

Action = Callable[[], None]
# The time the clock may not pass, and what it waits for (for the stall message).
Hold = tuple[float, str]


@dataclass(order=True)
class _Timed:
    at: float
    order: int
    action: Action = field(compare=False)


class Engine:
    def __init__(self, clock: SimClock, stall_seconds: float = 60.0) -> None:
        self.clock = clock
        self.stall_seconds = stall_seconds
        self.actions_run = 0
        self._heap: list[_Timed] = []
        self._order = itertools.count()
        self._inbox: queue.SimpleQueue[Action] = queue.SimpleQueue()
        self._holds: list[Callable[[], Hold | None]] = []

    @property
    def now(self) -> float:
        return self.clock.now()

    def at(self, when: float, action: Action) -> None:
        """Run ``action`` at simulated time ``when`` (at once if that has passed)."""
        heapq.heappush(self._heap, _Timed(when, next(self._order), action))

    def after(self, delay: float, action: Action) -> None:
        self.at(self.now + max(0.0, delay), action)

    def post(self, action: Action) -> None:
        """Run ``action`` on the engine's thread as soon as it can; safe from any thread."""
        self._inbox.put(action)

    def add_hold(self, hold: Callable[[], Hold | None]) -> None:
        """Ask, before each step, how far the clock may go (None: no limit)."""
        self._holds.append(hold)

    def _hold(self) -> Hold | None:
        found = [h for h in (hold() for hold in self._holds) if h is not None]
        return min(found) if found else None

    def _run_inbox(self, wait: float) -> bool:
        """Run posted actions, waiting up to ``wait`` real seconds for the first."""
        try:
            action = self._inbox.get(timeout=wait) if wait > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return False
        action()
        while True:
            try:
                action = self._inbox.get_nowait()
            except queue.Empty:
                return True
            action()

    def run(
        self,
        until: float,
        stop_when: Callable[[], bool] | None = None,
        tick: Callable[[], None] | None = None,
        tick_seconds: float = 0.25,
    ) -> None:
        """Run the world up to simulated time ``until`` (or until ``stop_when()``)."""
        next_tick = time.monotonic() + tick_seconds
        stalled: tuple[Hold, float] | None = None
        while True:
            self._run_inbox(0)
            if stop_when is not None and stop_when():
                self.clock.hold(self.now)
                return
            if tick is not None and time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + tick_seconds
            hold = self._hold()
            if not self._heap and hold is None:
                self.clock.hold(self.now)
                return  # nothing scheduled, nothing under way: nothing more can happen
            target = min(self._heap[0].at if self._heap else until, until)
            limit = target if hold is None or hold[0] >= target else hold[0]
            if limit < target and self.clock.speed is None:
                wait = 0.0  # as fast as it goes, yet a real wait takes no simulated time
            else:
                wait = self.clock.run_until(limit)
            if wait > 0:
                self._run_inbox(min(wait, tick_seconds))
                continue
            if limit < target:
                assert hold is not None
                real = time.monotonic()
                if stalled is None or stalled[0] != hold:
                    stalled = (hold, real)
                elif real - stalled[1] > self.stall_seconds:
                    raise SimulationError(
                        f"the simulated clock has waited {self.stall_seconds:.0f} s for "
                        f"{hold[1]}; is the platform's front door still running?"
                    )
                self._run_inbox(0.05)
                continue
            stalled = None
            if not self._heap or self._heap[0].at > until:  # nothing more can happen
                self.clock.hold(until)
                return
            timed = heapq.heappop(self._heap)
            self.clock.hold(timed.at)
            timed.action()
            self.actions_run += 1
