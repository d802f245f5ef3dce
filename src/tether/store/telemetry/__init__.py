"""The telemetry store: each accepted event once, by device and by time.

from tether.store.telemetry import open_telemetry_store

with open_telemetry_store(settings.resolved_telemetry_url()) as store:
    store.write(events)
    recent = store.latest("SN1", 50)
"""

from tether.store.telemetry.base import (
    ENGINES,
    TelemetryEvent,
    TelemetryStore,
    open_telemetry_store,
)

__all__ = ["ENGINES", "TelemetryEvent", "TelemetryStore", "open_telemetry_store"]
