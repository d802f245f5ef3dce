"""A per-device budget of records, on the records' own arrival times.

Each device may send ``rate`` records a second with bursts of ``burst`` (a
phone draining a full ring buffer, a cart flushing its store-and-forward queue).
The budget runs on arrival times, not on the gate's clock, so a backlog judged
late is judged as it arrived. Only records whose signature verified count, so a
forger cannot spend a genuine device's budget.
"""

from __future__ import annotations

import threading


class RecordBudget:
    """Token buckets per serial, refilled by arrival time."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, list[float]] = {}  # serial -> [tokens, last arrival ms]
        self._lock = threading.Lock()

    def allow(self, serial: str, arrival_ms: int) -> bool:
        """Spend one record of the device's budget; False when there is none left."""
        with self._lock:
            bucket = self._buckets.get(serial)
            if bucket is None:
                bucket = self._buckets[serial] = [self.burst, arrival_ms]
            tokens, last = bucket
            if arrival_ms > last:
                tokens = min(self.burst, tokens + (arrival_ms - last) * self.rate / 1000)
                bucket[1] = arrival_ms
            if tokens >= 1:
                bucket[0] = tokens - 1
                return True
            bucket[0] = tokens
            return False
