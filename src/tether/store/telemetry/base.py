"""The telemetry store port: each accepted event once, by device and by time.

The store is the tier-1 projection of the accepted-event log: rows keyed by
device serial, never by person. An event's identity is ``(serial, dedupe_key)``
(the seq in decimal, or a class's legacy key such as ``event_id``), so a replay
writes nothing twice. Times are integer milliseconds since the Unix epoch;
``ts`` is the corrected time every time query orders and filters by. Time ranges
are half-open: ``start_ms <= ts < end_ms``.

Order: ascending queries sort by ``ts``, then ``seq`` (events without a seq
first), then ``dedupe_key``; :meth:`TelemetryStore.latest` is the exact reverse.
:meth:`TelemetryStore.range` sorts by ``ts``, then serial, then that order.
"""

from __future__ import annotations

import importlib
import json
from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tether.closing import Closeable
from tether.errors import SettingsError

# URL scheme -> "module:factory"; the factory takes the URL and returns a TelemetryStore.
ENGINES: dict[str, str] = {
    "sqlite": "tether.store.telemetry.sqlite:SqliteTelemetryStore",
    "postgresql": "tether.store.telemetry.postgres:PostgresTelemetryStore",
    "postgresql+psycopg": "tether.store.telemetry.postgres:PostgresTelemetryStore",
}


@dataclass(frozen=True)
class TelemetryEvent:
    """One accepted event as the telemetry store keeps it."""

    tenant: str
    serial: str
    device_class: str
    site: str | None
    dedupe_key: str
    seq: int | None
    type: str
    v: int
    device_ts: int  # ms, what the device said
    ts: int  # ms, corrected: the time used for ordering
    arrival: int  # ms, when the platform received it
    clock_corrected: bool
    fw: str | None
    body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("tenant", "serial", "device_class", "dedupe_key", "type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(
                    f"telemetry event {name} must be a non-empty string, got {value!r}"
                )
        if self.seq is not None and (not isinstance(self.seq, int) or self.seq < 0):
            raise ValueError(
                f"telemetry event seq must be a non-negative int or None: {self.seq!r}"
            )
        if not isinstance(self.body, dict):
            raise ValueError(f"telemetry event body must be a dict, got {type(self.body).__name__}")


# What the engines select: TelemetryEvent's fields in order, so a row unpacks straight
# into one. And the two orders they sort a device's events by.
COLUMNS = (
    "tenant, serial, device_class, site, dedupe_key, seq, type, v, "
    "device_ts, ts, arrival, clock_corrected, fw, body"
)
ASC = "ts, seq NULLS FIRST, dedupe_key"
DESC = "ts DESC, seq DESC NULLS LAST, dedupe_key DESC"


def event_from_row(row: tuple[Any, ...]) -> TelemetryEvent:
    """A row of ``COLUMNS`` (the body as JSON text) as the event it holds."""
    tenant, serial, cls, site, key, seq, type_, v, device_ts, ts, arrival, fixed, fw, body = row
    return TelemetryEvent(
        tenant,
        serial,
        cls,
        site,
        key,
        seq,
        type_,
        v,
        device_ts,
        ts,
        arrival,
        bool(fixed),
        fw,
        json.loads(body),
    )


def check_limit(limit: int) -> None:
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")


class TelemetryStore(Closeable):
    """Accepted events by device and time. Safe to share between threads.

    Invalid arguments (a limit below 1) raise ``ValueError``; engine failures
    raise :class:`tether.errors.EngineError`.
    """

    @abstractmethod
    def write(self, events: Iterable[TelemetryEvent]) -> list[bool]:
        """Store events once each, in one transaction; durable when this returns.

        Returns, per event, True if it was inserted and False if an event with the
        same ``(serial, dedupe_key)`` was already stored (or came earlier in the
        same call). Concurrent writers never store an identity twice.
        """

    @abstractmethod
    def latest(self, serial: str, limit: int = 100) -> list[TelemetryEvent]:
        """The device's newest ``limit`` events, newest first."""

    @abstractmethod
    def by_device(
        self, serial: str, start_ms: int, end_ms: int, limit: int = 1000
    ) -> list[TelemetryEvent]:
        """The device's events with ``start_ms <= ts < end_ms``, oldest first."""

    @abstractmethod
    def range(
        self,
        tenant: str,
        start_ms: int,
        end_ms: int,
        device_class: str | None = None,
        site: str | None = None,
        limit: int = 1000,
    ) -> list[TelemetryEvent]:
        """A tenant's events with ``start_ms <= ts < end_ms``, oldest first.

        Narrowed to one device class and/or one site when given. Never crosses
        the tenant boundary.
        """

    @abstractmethod
    def seqs(self, serial: str) -> list[int]:
        """The sequence numbers stored for a device, ascending (for gap tracking)."""

    @abstractmethod
    def count(self, tenant: str | None = None) -> int:
        """How many events are stored, for one tenant or in all."""

    @abstractmethod
    def delete_before(self, ts_ms: int) -> int:
        """Retention: delete events with ``ts < ts_ms``; return how many went."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine's resources; idempotent. The store is unusable afterwards."""


def open_telemetry_store(url: str) -> TelemetryStore:
    """Open the telemetry store ``url`` names.

    An SQLite store creates (and upgrades) its schema itself; a PostgreSQL store
    must have been migrated (``tether migrate``) and raises
    :class:`tether.errors.MigrationRequiredError` until it is.

    Raises :class:`SettingsError` for an unknown scheme and
    :class:`tether.errors.EngineError` when the engine cannot be reached.
    """
    scheme, sep, _ = url.partition(":")
    target = ENGINES.get(scheme) if sep else None
    if target is None:
        shown = url if "@" not in url else f"{scheme}://...@{url.rpartition('@')[2]}"
        raise SettingsError(
            f"telemetry URL {shown!r}: unknown scheme {scheme if sep else '(none)'!r}; known "
            f"schemes: {', '.join(sorted(ENGINES))} (e.g. sqlite:///.tether/telemetry.sqlite, "
            "postgresql://user:password@host/database)"
        )
    module_name, _, attr = target.partition(":")
    factory: Callable[[str], TelemetryStore] = getattr(importlib.import_module(module_name), attr)
    return factory(url)
