"""Backpressure: how far the projector is behind the accepted-event log.

When the stores slow down, the event log absorbs the difference and the doors
keep accepting, up to ``ingest.max_backlog`` events not yet projected. Beyond
it the HTTPS door answers 429 with ``Retry-After`` and the MQTT bridge stops
taking messages from the broker, which holds them (QoS 1, the bridge's
persistent session) until the backlog has shrunk: nothing is dropped on the
way. The figure is read from the stream at most once a ``refresh`` seconds, so
a busy door costs the engine one query a second, not one per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tether.stream.base import Stream


class Backlog:
    """The projector's lag on the event log, against a limit."""

    def __init__(
        self,
        events: Stream,
        consumer: str,
        limit: int,
        refresh: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events = events
        self.consumer = consumer
        self.limit = limit
        self.refresh = refresh
        self.clock = clock
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._lag = 0

    def lag(self) -> int:
        """Events appended but not yet projected, as of the last refresh."""
        with self._lock:
            now = self.clock()
            if now - self._read_at >= self.refresh:
                self._lag = max(0, self.events.last_offset() - self.events.position(self.consumer))
                self._read_at = now
            return self._lag

    def over(self) -> bool:
        return self.lag() > self.limit

    def wait_until_under(self, stop: threading.Event, pause: float = 0.5) -> None:
        """Block while over the limit (or until ``stop`` is set)."""
        while not stop.is_set() and self.over():
            stop.wait(pause)
