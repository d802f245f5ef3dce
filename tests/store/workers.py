"""Child-process bodies for the multi-process telemetry tests (importable under spawn)."""

from __future__ import annotations

from typing import Any

from tether.store.telemetry import TelemetryEvent, open_telemetry_store


def write_events(url: str, events: list[TelemetryEvent], batch: int, start: Any, out: Any) -> None:
    """Wait for ``start``, write ``events`` in batches, report how many were inserted."""
    with open_telemetry_store(url) as store:
        start.wait(timeout=60)
        inserted = 0
        for i in range(0, len(events), batch):
            inserted += sum(store.write(events[i : i + batch]))
    out.put(inserted)


def migrate(url: str, start: Any, out: Any) -> None:
    """Wait for ``start``, migrate the telemetry database, report the revisions applied."""
    from tether.store import migrations

    start.wait(timeout=60)
    out.put(migrations.upgrade(migrations.TELEMETRY, url).applied)
