"""The gate worker: judges what the MQTT doors put in the raw stream.

Gate workers, in one process or many, share the raw stream through one work
group (``GATE_GROUP``): each claims a batch no other worker holds, judges the
MQTT submissions in it (HTTPS ones were judged as they arrived), tells devices
about rejects and capabilities through a notifier, and acknowledges the batch
last. A worker that dies mid-batch loses its lease, and another worker judges
the batch again, which the event log's uniqueness turns into duplicates, never
into second copies. Which worker judged a record changes nothing: acceptance
and order come from the record's (device, seq).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tether.contract.codes import ACCEPTED, REJECTED
from tether.gate.pipeline import Gate, Outcome
from tether.gate.submission import MQTT, MQTT_LEGACY, Submission
from tether.stream.group import WorkGroup

GATE_GROUP = "gate"
Notifier = Callable[[Sequence[Outcome]], None]


class GateWorker:
    def __init__(
        self, group: WorkGroup, gate: Gate, notify: Notifier | None = None, batch: int = 500
    ) -> None:
        self.group = group
        self.gate = gate
        self.notify = notify
        self.batch = batch

    def run_once(self) -> int:
        """Judge the next batch; return how many raw entries it covered."""
        entries = self.group.claim(self.batch)
        if not entries:
            return 0
        subs = [Submission.from_entry(e) for e in entries]
        outcomes = self.gate.process([s for s in subs if s.door in (MQTT, MQTT_LEGACY)])
        if self.notify is not None:
            self.notify([o for o in outcomes if o.outcome in (REJECTED, ACCEPTED)])
        self.group.ack(e.offset for e in entries)
        return len(entries)

    def drain(self) -> int:
        total = 0
        while done := self.run_once():
            total += done
        return total
