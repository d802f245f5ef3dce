"""The projector: from the accepted-event log into the telemetry store and device state.

It reads the event log from its durable position, writes each batch to the
telemetry store (idempotent on the event identity) and to device state, and
only then commits its position. A crash between the two replays the batch,
which changes nothing; deleting the stores and resetting the position rebuilds
them from the log.
"""

from __future__ import annotations

from tether.classes.catalog import ClassCatalog
from tether.gate.submission import AcceptedEvent
from tether.projections.state import DeviceStateStore
from tether.store.telemetry.base import TelemetryEvent, TelemetryStore
from tether.stream.base import Stream

CONSUMER = "projector"


def telemetry_event(e: AcceptedEvent, site_field: str | None, fw: str | None) -> TelemetryEvent:
    site = e.body.get(site_field) if site_field else None
    return TelemetryEvent(
        tenant=e.tenant,
        serial=e.serial,
        device_class=e.device_class,
        site=site if isinstance(site, str) else None,
        dedupe_key=e.dedupe_key,
        seq=e.seq,
        type=e.type,
        v=e.v,
        device_ts=e.ts if e.device_ts is None else e.device_ts,
        ts=e.ts,
        arrival=e.arrival,
        clock_corrected=e.clock_corrected,
        fw=fw,
        body=e.body,
    )


class Projector:
    def __init__(
        self,
        events: Stream,
        telemetry: TelemetryStore,
        state: DeviceStateStore,
        catalog: ClassCatalog,
    ) -> None:
        self.events = events
        self.telemetry = telemetry
        self.state = state
        self.catalog = catalog

    def run_once(self, limit: int = 1000) -> int:
        """Project the next batch; return how many events it held."""
        entries = self.events.read(self.events.position(CONSUMER), limit)
        if not entries:
            return 0
        events = [AcceptedEvent.from_bytes(e.data) for e in entries]
        runtimes = {r.name: r for r in self.catalog}
        self.state.apply(events, runtimes)
        fws = {s: st.fw for s, st in self.state.many({e.serial for e in events}).items()}
        rows = []
        for e in events:
            runtime = runtimes.get(e.device_class)
            rows.append(
                telemetry_event(e, runtime.pack.site_field if runtime else None, fws.get(e.serial))
            )
        self.telemetry.write(rows)
        self.events.commit(CONSUMER, entries[-1].offset)
        return len(entries)

    def drain(self, limit: int = 1000) -> int:
        """Project until the log is exhausted; return the total."""
        total = 0
        while done := self.run_once(limit):
            total += done
        return total
