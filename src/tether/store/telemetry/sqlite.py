"""The embedded telemetry store: one SQLite table clustered by device and time.

``telemetry`` is a ``WITHOUT ROWID`` table whose primary key is
``(serial, ts, dedupe_key)``, so one device's events sit together in time order
and "the latest N of a device" is one short range scan. Secondary indexes:

- ``(serial, dedupe_key)`` unique: the event identity, what makes writes idempotent;
- ``(tenant, site, ts)`` (partial, sited events only) and ``(tenant, device_class, ts)``:
  a site or a class over a time range, like the seed's site index;
- ``(tenant, ts)``: a tenant over a time range, and retention.

Bodies are JSON text. Writes are one ``BEGIN IMMEDIATE`` transaction per call: a
fast ``executemany`` first, and only when some rows were already there a second,
row-by-row pass inside a savepoint to say which.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tether.errors import EngineError
from tether.store import sqlitedb
from tether.store.telemetry.base import (
    ASC,
    COLUMNS,
    DESC,
    TelemetryEvent,
    TelemetryStore,
    check_limit,
    event_from_row,
)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS telemetry (
    serial TEXT NOT NULL,
    ts INTEGER NOT NULL,
    dedupe_key TEXT NOT NULL,
    seq INTEGER,
    tenant TEXT NOT NULL,
    device_class TEXT NOT NULL,
    site TEXT,
    type TEXT NOT NULL,
    v INTEGER NOT NULL,
    device_ts INTEGER NOT NULL,
    arrival INTEGER NOT NULL,
    clock_corrected INTEGER NOT NULL,
    fw TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (serial, ts, dedupe_key)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS telemetry_identity ON telemetry (serial, dedupe_key);
CREATE INDEX IF NOT EXISTS telemetry_by_site ON telemetry (tenant, site, ts)
    WHERE site IS NOT NULL;
CREATE INDEX IF NOT EXISTS telemetry_by_class ON telemetry (tenant, device_class, ts);
CREATE INDEX IF NOT EXISTS telemetry_by_tenant ON telemetry (tenant, ts);
"""
_INSERT = f"INSERT INTO telemetry ({COLUMNS}) VALUES ({', '.join('?' * 14)}) ON CONFLICT DO NOTHING"
_TENANTS = """
WITH RECURSIVE t(tenant) AS (
    SELECT min(tenant) FROM telemetry
    UNION ALL
    SELECT (SELECT min(tenant) FROM telemetry WHERE tenant > t.tenant) FROM t
    WHERE t.tenant IS NOT NULL
)
SELECT tenant FROM t WHERE tenant IS NOT NULL
"""
_PRAGMAS: dict[str, str | int] = {
    # Interleaved arrivals dirty about three random pages per event (the device's
    # cluster, the identity and the site index); small pages keep the WAL small.
    "page_size": 4096,  # takes effect only when the file is created
    "cache_size": -65536,  # KiB: 64 MiB of page cache per connection
    "mmap_size": 268_435_456,  # read the first 256 MiB through mmap: no pread per page
    "wal_autocheckpoint": 16384,  # pages: checkpoint every 64 MiB of WAL, not every 4 MiB
    "temp_store": "MEMORY",
}


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _row(event: TelemetryEvent) -> tuple[Any, ...]:
    if not isinstance(event, TelemetryEvent):
        raise ValueError(f"write takes TelemetryEvent objects, got {type(event).__name__}")
    try:
        body = _ENCODE(event.body)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"event {event.serial}/{event.dedupe_key}: body is not JSON-serialisable: {exc}"
        ) from exc
    return (
        event.tenant,
        event.serial,
        event.device_class,
        event.site,
        event.dedupe_key,
        event.seq,
        event.type,
        event.v,
        event.device_ts,
        event.ts,
        event.arrival,
        1 if event.clock_corrected else 0,
        event.fw,
        body,
    )


class SqliteTelemetryStore(TelemetryStore):
    """The telemetry store in one SQLite file (WAL, ``synchronous=FULL`` by default)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._what = "telemetry store"
        self.db = sqlitedb.Database(url, self._what, pragmas=_PRAGMAS)
        try:
            with self.db.write() as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise EngineError(
                        f"the telemetry store at {self.db.path} has schema version {version}, "
                        f"newer than this tether's {SCHEMA_VERSION}: upgrade tether"
                    )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self.close()
            raise

    # plumbing
    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self.db.read() as conn:
            return conn.execute(sql, params).fetchall()

    def _events(self, sql: str, params: tuple[Any, ...]) -> list[TelemetryEvent]:
        return [event_from_row(row) for row in self._query(sql, params)]

    # the port
    def write(self, events: Iterable[TelemetryEvent]) -> list[bool]:
        rows = [_row(event) for event in events]
        if not rows:
            return []
        with self.db.write() as conn:
            before = conn.total_changes
            conn.execute("SAVEPOINT batch")
            conn.executemany(_INSERT, rows)
            if conn.total_changes - before == len(rows):
                conn.execute("RELEASE batch")
                return [True] * len(rows)
            # Some were stored already: redo one by one to learn which.
            conn.execute("ROLLBACK TO batch")
            inserted = [conn.execute(_INSERT, row).rowcount == 1 for row in rows]
            conn.execute("RELEASE batch")
        return inserted

    def latest(self, serial: str, limit: int = 100) -> list[TelemetryEvent]:
        check_limit(limit)
        return self._events(
            f"SELECT {COLUMNS} FROM telemetry WHERE serial = ? ORDER BY {DESC} LIMIT ?",
            (serial, limit),
        )

    def by_device(
        self, serial: str, start_ms: int, end_ms: int, limit: int = 1000
    ) -> list[TelemetryEvent]:
        check_limit(limit)
        return self._events(
            f"SELECT {COLUMNS} FROM telemetry WHERE serial = ? AND ts >= ? AND ts < ? "
            f"ORDER BY {ASC} LIMIT ?",
            (serial, start_ms, end_ms, limit),
        )

    def range(
        self,
        tenant: str,
        start_ms: int,
        end_ms: int,
        device_class: str | None = None,
        site: str | None = None,
        limit: int = 1000,
    ) -> list[TelemetryEvent]:
        check_limit(limit)
        where, params = ["tenant = ?"], [tenant]
        if site is not None:
            index = "telemetry_by_site"
            where.append("site = ?")
            params.append(site)
        else:
            index = "telemetry_by_class" if device_class is not None else "telemetry_by_tenant"
        if device_class is not None:
            where.append("device_class = ?")
            params.append(device_class)
        return self._events(
            f"SELECT {COLUMNS} FROM telemetry INDEXED BY {index} "
            f"WHERE {' AND '.join(where)} AND ts >= ? AND ts < ? "
            f"ORDER BY ts, serial, seq NULLS FIRST, dedupe_key LIMIT ?",
            (*params, start_ms, end_ms, limit),
        )

    def seqs(self, serial: str) -> list[int]:
        rows = self._query(
            "SELECT seq FROM telemetry WHERE serial = ? AND seq IS NOT NULL ORDER BY seq",
            (serial,),
        )
        return [seq for (seq,) in rows]

    def count(self, tenant: str | None = None) -> int:
        if tenant is None:
            rows = self._query("SELECT count(*) FROM telemetry", ())
        else:
            rows = self._query("SELECT count(*) FROM telemetry WHERE tenant = ?", (tenant,))
        return int(rows[0][0])

    def delete_before(self, ts_ms: int) -> int:
        with self.db.write() as conn:
            tenants = [tenant for (tenant,) in conn.execute(_TENANTS)]
            deleted = 0
            for tenant in tenants:
                deleted += conn.execute(
                    "DELETE FROM telemetry INDEXED BY telemetry_by_tenant "
                    "WHERE tenant = ? AND ts < ?",
                    (tenant, ts_ms),
                ).rowcount
        return deleted

    def close(self) -> None:
        self.db.close()

    def __repr__(self) -> str:
        return f"SqliteTelemetryStore({self.url!r})"
