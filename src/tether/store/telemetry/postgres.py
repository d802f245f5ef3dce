"""The production telemetry store: PostgreSQL, partitioned by day, identity in its own table.

Schema (made by ``tether migrate``; see ``tether/store/migrations/telemetry``):

- ``telemetry`` is range-partitioned on ``ts``, one partition per UTC day,
  ``telemetry_pYYYYMMDD``, plus two outer partitions for timestamps before the
  year 1 and from the year 10000 on. There is no DEFAULT partition: the store
  makes the partition an event needs before it writes the event, so nothing is
  ever routed to a catch-all (a catch-all would also have to be scanned each time
  a partition is added, and would stop ordered partition scans).
- Partitioned indexes, copied into every partition: ``(serial, ts DESC, seq DESC
  NULLS LAST, dedupe_key DESC)`` for a device's latest events (the port's exact
  order, so no sort), ``(tenant, site, ts)`` (partial, sited events only),
  ``(tenant, device_class, ts)`` and ``(tenant, ts)`` for a site, a class or a
  tenant over a time range.
- ``event_keys (serial, dedupe_key)``, primary key, holds each stored event's
  identity once across all partitions (a unique index on a partitioned table
  must include ``ts``, and a replay may carry another corrected time). A write
  claims keys with ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` and inserts
  the rows of the keys it claimed, in the same statement and transaction, so
  concurrent writers never store an identity twice and each call learns which of
  its events were new. Keys are claimed in (serial, dedupe_key) order, so two
  writers with overlapping batches cannot deadlock.

Partitions are made ahead: on open and then hourly, for yesterday to a week
ahead; and on write, for any day a batch needs (late events days old, clocks
reset to 1970 that the gate did not correct), in their own short transaction
under an advisory lock, with ``CREATE TABLE ... (LIKE telemetry)`` then
``ATTACH PARTITION`` (which does not block readers or writers).

Retention (``delete_before``) detaches and drops whole partitions older than the
cut, deleting their keys first, and deletes rows (and keys) in the partition
straddling it. A detached partition is renamed ``telemetry_retired_p...`` before
its keys go, so a crash in between leaves a table the next retention pass
finishes.

Bodies are JSON text, encoded exactly as the SQLite engine encodes them. A write
copies its batch (binary COPY) into a temporary table of the session, then one
statement claims the keys and stores the new rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from tether.errors import EngineError
from tether.store import migrations, postgres
from tether.store.telemetry.base import (
    ASC,
    COLUMNS,
    DESC,
    TelemetryEvent,
    TelemetryStore,
    check_limit,
    event_from_row,
)

T = TypeVar("T")

DAY_MS = 86_400_000
# Days made ahead of today, on open and hourly after.
AHEAD_DAYS = 7
TOPUP_SECONDS = 3600.0
# The outer partitions' bounds (see the migration): day partitions live in between.
BEFORE_YEAR_1_MS = -62_135_596_800_000
FROM_YEAR_10000_MS = 253_402_300_800_000
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
# pg_advisory locks: one for making partitions, one for retention.
PARTITION_LOCK = 0x7465_7468_6572_0101
RETENTION_LOCK = 0x7465_7468_6572_0102
WRITE_ATTEMPTS = 6

# A write copies its batch into a temporary table (COPY, binary), then one statement
# claims the keys in a fixed order, stores the rows of the keys it claimed and returns
# them (data-modifying CTEs always run to completion).
_BATCH_TABLE = """
CREATE TEMPORARY TABLE IF NOT EXISTS telemetry_batch (
    ts bigint, seq bigint, device_ts bigint, arrival bigint, v bigint, clock_corrected boolean,
    serial text COLLATE "C", dedupe_key text COLLATE "C", tenant text COLLATE "C",
    device_class text COLLATE "C", site text COLLATE "C", type text, fw text, body text
) ON COMMIT DELETE ROWS
"""
_BATCH_TYPES = ["int8"] * 5 + ["bool"] + ["text"] * 8
_COPY = "COPY pg_temp.telemetry_batch FROM STDIN (FORMAT BINARY)"
_WRITE = """
WITH claimed AS (
    INSERT INTO event_keys (serial, dedupe_key)
    SELECT serial, dedupe_key FROM pg_temp.telemetry_batch ORDER BY serial, dedupe_key
    ON CONFLICT DO NOTHING
    RETURNING serial, dedupe_key
), stored AS (
    INSERT INTO telemetry (ts, seq, device_ts, arrival, v, clock_corrected, serial,
                           dedupe_key, tenant, device_class, site, type, fw, body)
    SELECT b.ts, b.seq, b.device_ts, b.arrival, b.v, b.clock_corrected, b.serial,
           b.dedupe_key, b.tenant, b.device_class, b.site, b.type, b.fw, b.body
    FROM pg_temp.telemetry_batch b
    JOIN claimed c ON c.serial = b.serial AND c.dedupe_key = b.dedupe_key
)
SELECT serial, dedupe_key FROM claimed
"""
_PARTITIONS = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'telemetry'::regclass
"""
_RETIRED = """
SELECT c.relname FROM pg_class c
WHERE c.relkind = 'r' AND c.relname LIKE 'telemetry\\_retired\\_%%'
  AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'telemetry'::regclass)
ORDER BY c.relname
"""
_BOUND = re.compile(r"FROM \((.+)\) TO \((.+)\)")
_DAY_NAME = re.compile(r"telemetry_p(\d{4})(\d{2})(\d{2})")

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class Partition:
    """One partition of ``telemetry``: ``low <= ts < high`` (None: unbounded)."""

    name: str
    low: int | None
    high: int | None

    @property
    def day(self) -> int | None:
        """The day (since the epoch) a day partition holds; None for the outer ones."""
        if self.low is None or self.high is None or self.high - self.low != DAY_MS:
            return None
        return self.low // DAY_MS


def day_of(ts: int) -> int | None:
    """The day partition ``ts`` belongs in, or None when an outer partition holds it."""
    if ts < BEFORE_YEAR_1_MS or ts >= FROM_YEAR_10000_MS:
        return None
    return ts // DAY_MS


def partition_name(day: int) -> str:
    """``telemetry_pYYYYMMDD`` for a day since the epoch (UTC)."""
    d = dt.date.fromordinal(_EPOCH_ORDINAL + day)
    return f"telemetry_p{d.year:04d}{d.month:02d}{d.day:02d}"


def _bound(text: str) -> int | None:
    text = text.strip()
    if text in ("MINVALUE", "MAXVALUE"):
        return None
    return int(text.strip("'"))


def _partition(name: str, bound: str) -> Partition:
    found = _BOUND.search(bound)
    if found is None:
        raise EngineError(f"telemetry partition {name} has an unexpected bound {bound!r}")
    return Partition(name, _bound(found.group(1)), _bound(found.group(2)))


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: U+FFFD takes its place (``\\x00`` is never valid
    in a serial, key, site or version a device meant; the SQLite engine keeps it)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _maybe(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _columns(event: TelemetryEvent) -> tuple[Any, ...]:
    """The event in the order of ``_WRITE``'s arrays; ValueError when it cannot be stored."""
    if not isinstance(event, TelemetryEvent):
        raise ValueError(f"write takes TelemetryEvent objects, got {type(event).__name__}")
    try:
        body = _ENCODE(event.body)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"event {event.serial}/{event.dedupe_key}: body is not JSON-serialisable: {exc}"
        ) from exc
    return (
        event.ts,
        event.seq,
        event.device_ts,
        event.arrival,
        event.v,
        bool(event.clock_corrected),
        _text(event.serial),
        _text(event.dedupe_key),
        _text(event.tenant),
        _text(event.device_class),
        _maybe(event.site),
        _text(event.type),
        _maybe(event.fw),
        body,
    )


def _ms(value: int) -> int:
    """A time bound as an integer: ``ts < 300.5`` holds for the same integer ``ts`` as
    ``ts < 301``, and ``ts >= 50.5`` as ``ts >= 51``, so a fractional bound rounds up."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"times are ms since the epoch, got {value!r}")
    return value if isinstance(value, int) else math.ceil(value)


class _Retry(Exception):
    """Internal: run the write again (a deadlock, a partition dropped meanwhile)."""


class PostgresTelemetryStore(TelemetryStore):
    """The telemetry store in a PostgreSQL database migrated by ``tether migrate``.

    Opening checks the schema revision (``MigrationRequiredError`` until the
    database is migrated) and makes partitions ahead. A pool of up to
    ``postgres.POOL_SIZE`` connections serves the threads that share the store.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._what = "telemetry store"
        self._clock = clock
        postgres.conninfo(url, self._what)  # SettingsError for a malformed URL
        self._pool = postgres.Pool(url, self._what)
        self._days: set[int] = set()
        self._days_lock = threading.Lock()
        self._topped_up = float("-inf")
        # Connections whose session has the temporary batch table.
        self._batch_ready: weakref.WeakSet[postgres.Connection] = weakref.WeakSet()
        try:
            found = self._run(lambda conn: migrations.stored_revision(conn, migrations.TELEMETRY))
            migrations.verify(migrations.TELEMETRY, found, url)
            self.make_ahead()
        except BaseException:
            self._pool.close()
            raise

    # plumbing
    def _run(self, op: Callable[[postgres.Connection], T]) -> T:
        """Run ``op`` on a pooled connection; once more on a fresh one if the old had died.

        ``op`` must be safe to repeat when it failed before committing (reads, and
        transactions that roll back when the connection drops).
        """
        for attempt in (1, 2):
            with self._pool.connection() as conn:
                try:
                    return op(conn)
                except psycopg.Error as exc:
                    if attempt == 1 and conn.broken:
                        self._pool.discard_idle()  # the server restarted: all are dead
                        continue
                    raise postgres.translate(exc, self._what, self.url) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._run(lambda conn: conn.execute(sql, params).fetchall())

    def _events(self, sql: str, params: Sequence[Any]) -> list[TelemetryEvent]:
        return [event_from_row(row) for row in self._rows(sql, params)]

    # partitions
    def partitions(self) -> list[Partition]:
        """The partitions of ``telemetry``, oldest first (outer ones included)."""
        found = self._run(lambda conn: conn.execute(_PARTITIONS).fetchall())
        parts = [_partition(name, bound) for name, bound in found]
        return sorted(parts, key=lambda p: (p.low is not None, p.low or 0))

    def make_ahead(self) -> None:
        """Make the day partitions from yesterday to ``AHEAD_DAYS`` ahead, if missing."""
        today = int(self._clock() * 1000) // DAY_MS
        self.make_days(range(today - 1, today + AHEAD_DAYS + 1))
        self._topped_up = time.monotonic()

    def make_days(self, days: Iterable[int]) -> None:
        """Make the day partitions ``days`` (days since the epoch) that do not exist yet."""
        wanted = {d for d in days if day_of(d * DAY_MS) is not None}
        with self._days_lock:
            missing = wanted - self._days
        if missing:
            self._run(lambda conn: self._create(conn, missing))

    def _create(self, conn: postgres.Connection, days: set[int]) -> None:
        with conn.transaction():
            # One maker at a time; the others find the partitions made when they get in.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            rows = conn.execute(_PARTITIONS).fetchall()
            existing = {_partition(name, bound).day for name, bound in rows}
            for day in sorted(days - existing):
                name = sql.Identifier(partition_name(day))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} (LIKE telemetry INCLUDING DEFAULTS "
                        "INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)"
                    ).format(name)
                )
                conn.execute(
                    sql.SQL(
                        "ALTER TABLE telemetry ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})"
                    ).format(name, sql.Literal(day * DAY_MS), sql.Literal((day + 1) * DAY_MS))
                )
                existing.add(day)
        with self._days_lock:
            self._days = {d for d in existing if d is not None}

    def _forget_days(self) -> None:
        with self._days_lock:
            self._days = set()

    # the port
    def write(self, events: Iterable[TelemetryEvent]) -> list[bool]:
        rows = [_columns(event) for event in events]
        if not rows:
            return []
        # The first of several events with one identity is the one that can be new.
        first: dict[tuple[str, str], int] = {}
        for i, row in enumerate(rows):
            first.setdefault((row[6], row[7]), i)
        unique = [rows[i] for i in sorted(first.values())]
        days = {d for row in unique if (d := day_of(row[0])) is not None}
        if time.monotonic() - self._topped_up > TOPUP_SECONDS:
            self.make_ahead()
        claimed: set[tuple[str, str]] = set()
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            self.make_days(days)
            try:
                claimed = self._run(lambda conn: self._write(conn, unique))
                break
            except _Retry:
                if attempt == WRITE_ATTEMPTS:
                    raise EngineError(
                        f"the telemetry store at {postgres.shown(self.url)} kept refusing a "
                        f"batch of {len(rows)} events ({WRITE_ATTEMPTS} attempts: deadlocks "
                        "or partitions dropped meanwhile); nothing of it was stored"
                    ) from None
                time.sleep(random.uniform(0.0, 0.01 * attempt))
        return [
            first[(row[6], row[7])] == i and (row[6], row[7]) in claimed
            for i, row in enumerate(rows)
        ]

    def _write(
        self, conn: postgres.Connection, rows: list[tuple[Any, ...]]
    ) -> set[tuple[str, str]]:
        committing = False
        try:
            if conn not in self._batch_ready:
                conn.execute(_BATCH_TABLE)
                self._batch_ready.add(conn)
            with conn.transaction():
                with conn.cursor().copy(_COPY) as copy:
                    copy.set_types(_BATCH_TYPES)
                    for row in rows:
                        copy.write_row(row)
                found = conn.execute(_WRITE).fetchall()
                committing = True
        except pgerrors.CheckViolation as exc:
            # "no partition of relation telemetry found for row": retention dropped
            # a partition since this process last looked. Look again and retry.
            if "partition" not in str(exc):
                raise
            self._forget_days()
            raise _Retry() from exc
        except (pgerrors.DeadlockDetected, pgerrors.SerializationFailure) as exc:
            raise _Retry() from exc
        except psycopg.OperationalError as exc:
            if committing:
                raise EngineError(
                    f"the telemetry store at {postgres.shown(self.url)} lost the connection "
                    "while committing a batch: it may or may not have landed. Writing it "
                    f"again is safe (writes are idempotent) ({postgres.scrub(str(exc), self.url)})"
                ) from exc
            raise
        return {(serial, key) for serial, key in found}

    def latest(self, serial: str, limit: int = 100) -> list[TelemetryEvent]:
        check_limit(limit)
        return self._events(
            f"SELECT {COLUMNS} FROM telemetry WHERE serial = %s ORDER BY {DESC} LIMIT %s",
            (_text(serial), limit),
        )

    def by_device(
        self, serial: str, start_ms: int, end_ms: int, limit: int = 1000
    ) -> list[TelemetryEvent]:
        check_limit(limit)
        return self._events(
            f"SELECT {COLUMNS} FROM telemetry "
            "WHERE serial = %s AND ts >= %s::bigint AND ts < %s::bigint "
            f"ORDER BY {ASC} LIMIT %s",
            (_text(serial), _ms(start_ms), _ms(end_ms), limit),
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
        where, params = ["tenant = %s"], [_text(tenant)]
        if site is not None:
            where.append("site = %s")
            params.append(_text(site))
        if device_class is not None:
            where.append("device_class = %s")
            params.append(_text(device_class))
        return self._events(
            f"SELECT {COLUMNS} FROM telemetry "
            f"WHERE {' AND '.join(where)} AND ts >= %s::bigint AND ts < %s::bigint "
            "ORDER BY ts, serial, seq NULLS FIRST, dedupe_key LIMIT %s",
            (*params, _ms(start_ms), _ms(end_ms), limit),
        )

    def seqs(self, serial: str) -> list[int]:
        rows = self._rows(
            "SELECT seq FROM telemetry WHERE serial = %s AND seq IS NOT NULL ORDER BY seq",
            (_text(serial),),
        )
        return [int(seq) for (seq,) in rows]

    def count(self, tenant: str | None = None) -> int:
        if tenant is None:
            rows = self._rows("SELECT count(*) FROM telemetry", ())
        else:
            rows = self._rows("SELECT count(*) FROM telemetry WHERE tenant = %s", (_text(tenant),))
        return int(rows[0][0])

    def delete_before(self, ts_ms: int) -> int:
        cut = _ms(ts_ms)
        try:
            # Each step is its own transaction and the whole is safe to run again.
            return self._run(lambda conn: self._retention(conn, cut))
        finally:
            self._forget_days()
            self._topped_up = float("-inf")  # the next write makes the days ahead again

    def _retention(self, conn: postgres.Connection, cut: int) -> int:
        conn.execute("SELECT pg_advisory_lock(%s)", (RETENTION_LOCK,))  # one run at a time
        try:
            return self._retire(conn, cut)
        finally:
            if not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (RETENTION_LOCK,))

    def _retire(self, conn: postgres.Connection, cut: int) -> int:
        leftovers = [name for (name,) in conn.execute(_RETIRED).fetchall()]
        deleted = sum(self._drop_retired(conn, name) for name in leftovers)
        parts = [_partition(name, bound) for name, bound in conn.execute(_PARTITIONS).fetchall()]
        for part in parts:
            if part.day is not None and part.high is not None and part.high <= cut:
                retired = "telemetry_retired_" + part.name.removeprefix("telemetry_")
                with conn.transaction():
                    conn.execute(
                        sql.SQL("ALTER TABLE telemetry DETACH PARTITION {}").format(
                            sql.Identifier(part.name)
                        )
                    )
                    conn.execute(
                        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                            sql.Identifier(part.name), sql.Identifier(retired)
                        )
                    )
                deleted += self._drop_retired(conn, retired)
            elif part.low is None or part.low < cut:
                with conn.transaction():
                    cursor = conn.execute(
                        sql.SQL(
                            "WITH gone AS (DELETE FROM {} WHERE ts < %s::bigint "
                            "RETURNING serial, dedupe_key) "
                            "DELETE FROM event_keys k USING gone g "
                            "WHERE k.serial = g.serial AND k.dedupe_key = g.dedupe_key"
                        ).format(sql.Identifier(part.name)),
                        (cut,),
                    )
                    deleted += max(cursor.rowcount, 0)
        return deleted

    @staticmethod
    def _drop_retired(conn: postgres.Connection, name: str) -> int:
        """Delete the keys of a detached partition's rows, then drop it; return its rows."""
        with conn.transaction():
            table = sql.Identifier(name)
            cursor = conn.execute(
                sql.SQL(
                    "DELETE FROM event_keys k USING {} r "
                    "WHERE k.serial = r.serial AND k.dedupe_key = r.dedupe_key"
                ).format(table)
            )
            conn.execute(sql.SQL("DROP TABLE {}").format(table))
        return max(cursor.rowcount, 0)

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresTelemetryStore({postgres.shown(self.url)!r})"
