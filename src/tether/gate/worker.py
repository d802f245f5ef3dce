"""The gate worker: judges what the MQTT doors put in the raw stream.

It reads the raw stream from its durable position in batches, judges the MQTT
submissions (HTTPS ones were judged as they arrived), tells devices about
rejects and capabilities through a notifier, and commits its position last. A
worker that dies mid-batch repeats the batch on restart, which the event log's
uniqueness turns into duplicates, never into second copies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tether.contract.codes import ACCEPTED, REJECTED
from tether.gate.pipeline import Gate, Outcome
from tether.gate.submission import MQTT, MQTT_LEGACY, Submission
from tether.stream.base import Stream

CONSUMER = "gate"
Notifier = Callable[[Sequence[Outcome]], None]


class GateWorker:
    def __init__(
        self, raw: Stream, gate: Gate, notify: Notifier | None = None, batch: int = 500
    ) -> None:
        self.raw = raw
        self.gate = gate
        self.notify = notify
        self.batch = batch

    def run_once(self) -> int:
        """Judge the next batch; return how many raw entries it covered."""
        entries = self.raw.read(self.raw.position(CONSUMER), self.batch)
        if not entries:
            return 0
        subs = [Submission.from_entry(e) for e in entries]
        outcomes = self.gate.process([s for s in subs if s.door in (MQTT, MQTT_LEGACY)])
        if self.notify is not None:
            self.notify([o for o in outcomes if o.outcome in (REJECTED, ACCEPTED)])
        self.raw.commit(CONSUMER, entries[-1].offset)
        return len(entries)

    def drain(self) -> int:
        total = 0
        while done := self.run_once():
            total += done
        return total
