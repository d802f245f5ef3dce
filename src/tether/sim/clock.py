"""The simulated world's clock, shared by every device and, injected, by the platform.

The world moves in events: a brushing session, an app opened, a scan. While an
event runs the clock is held at its time, so everything the event does happens
at one instant: the device's timestamp, the door's arrival time, a pairing
challenge and the bond record that answers it. Between events the clock runs at
``speed`` simulated seconds per real second (a week per minute is 10,080) but
never past the next event; with no speed it jumps from event to event as fast as
the work allows. When the work is slower than the speed, time stretches instead
of skipping: the clock only moves forward, and never past what the world did.

Pass ``clock.now`` (or the clock itself) to ``Platform.open(settings, clock=...)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

WEEK = 7 * 86400.0


class SimClock:
    """Simulated seconds since the Unix epoch, as a float, like ``time.time``."""

    def __init__(
        self,
        start: float,
        speed: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"a clock's speed must be positive (got {speed})")
        self.start = start
        self.speed = speed
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._at = start  # the reading at the anchor
        self._anchor = monotonic()  # the real time of the anchor
        self._limit = start  # the clock never passes this

    def now(self) -> float:
        with self._lock:
            return self._reading(self._monotonic())

    def __call__(self) -> float:
        return self.now()

    @property
    def elapsed(self) -> float:
        """Simulated seconds since the start."""
        return self.now() - self.start

    def _reading(self, real: float) -> float:
        if self.speed is None:
            return self._at
        return min(self._limit, self._at + (real - self._anchor) * self.speed)

    def hold(self, at: float) -> float:
        """Stop the clock at ``at`` (or where it stands, if that is later); the reading."""
        with self._lock:
            real = self._monotonic()
            reading = max(self._reading(real), at)
            self._at, self._anchor, self._limit = reading, real, reading
            return reading

    def run_until(self, limit: float) -> float:
        """Let the clock run toward ``limit``; the real seconds until it gets there.

        0 means it is there (at once, with no speed). Calling again re-anchors the
        clock where it stands, so a slow world stretches time instead of skipping it.
        """
        with self._lock:
            real = self._monotonic()
            reading = self._reading(real)
            self._at, self._anchor = reading, real
            self._limit = max(limit, reading)
            if self.speed is None:
                self._at = self._limit
                return 0.0
            return (self._limit - reading) / self.speed
