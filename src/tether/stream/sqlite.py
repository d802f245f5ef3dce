"""The embedded stream engine: named streams in one SQLite file.

Each append is one ``BEGIN IMMEDIATE`` transaction, so the uniqueness check, the
offsets it hands out and the rows it writes cannot race another thread or
process. Keys live in their own table, which trimming leaves alone. The
database runs in WAL mode with ``synchronous=FULL`` unless the URL says
``?synchronous=normal``: an append is on disk when it returns.

An append writes its rows with a few multi-row ``INSERT`` statements (pieces of
a power-of-two number of rows, so a handful of prepared statements serve every
batch size) rather than one statement execution per row; the stream, the time
and the first position are parameters of the statement, not of every row. A unique append first
assumes its keys are new: it inserts them, and only if the count of rows
inserted falls short does it roll back and look the keys up (and keeps looking
first while appends keep meeting held keys). Append times never
decrease along a stream, so trimming removes a prefix of positions and needs
no index on the time: files created before this kept theirs, which still works.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator

from tether.store import sqlitedb
from tether.stream.base import (
    StoredEntry,
    Stream,
    StreamEntry,
    check_name,
    check_read,
    checked_batch,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    last_offset INTEGER NOT NULL DEFAULT 0,
    last_appended REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS entries (
    stream INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    key TEXT,
    data BLOB NOT NULL,
    headers TEXT,
    appended_at REAL NOT NULL,
    PRIMARY KEY (stream, pos)
);
CREATE TABLE IF NOT EXISTS stream_keys (
    stream INTEGER NOT NULL,
    key TEXT NOT NULL,
    pos INTEGER NOT NULL,
    PRIMARY KEY (stream, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumers (
    stream INTEGER NOT NULL,
    name TEXT NOT NULL,
    pos INTEGER NOT NULL,
    PRIMARY KEY (stream, name)
) WITHOUT ROWID;
"""
_CHUNK = 500  # keys per IN (...) query
# Checkpoint every 16 MiB of WAL rather than 4: the key index's pages, dirtied by
# every batch, are copied into the database file less often (a larger WAL saves
# little more and makes each checkpoint a long stall).
_PRAGMAS: dict[str, str | int] = {"wal_autocheckpoint": 4096}
_HEADERS = json.JSONEncoder(sort_keys=True).encode  # json.dumps(headers, sort_keys=True)
_MAX_ROWS = 256  # rows per INSERT statement (at most 771 parameters)


@functools.cache
def _entries_sql(rows: int) -> str:
    """Rows of entries: ?1 the stream, ?2 the append time, ?3 the first row's position,
    then each row's key, data and headers (positions follow on from ?3)."""
    values = ",".join(f"(?1,?3+{k},?{4 + 3 * k},?{5 + 3 * k},?{6 + 3 * k},?2)" for k in range(rows))
    return f"INSERT INTO entries (stream, pos, key, data, headers, appended_at) VALUES {values}"


@functools.cache
def _keys_sql(rows: int) -> str:
    """Rows of keys: ?1 the stream, then each row's key and position."""
    values = ",".join(f"(?1,?{2 + 2 * k},?{3 + 2 * k})" for k in range(rows))
    return f"INSERT OR IGNORE INTO stream_keys (stream, key, pos) VALUES {values}"


def _pieces(count: int) -> Iterator[tuple[int, int]]:
    """(start, rows) of pieces of 256, 128, ... 1 rows: a few statements serve any count."""
    start = 0
    while start < count:
        rows = min(_MAX_ROWS, 1 << ((count - start).bit_length() - 1))
        yield start, rows
        start += rows


def _insert_entries(
    conn: sqlite3.Connection, stream: int, now: float, first: int, values: list[object]
) -> None:
    """Entries at positions ``first``, ``first + 1``, ...: (key, data, headers) each."""
    for start, rows in _pieces(len(values) // 3):
        conn.execute(
            _entries_sql(rows),
            [stream, now, first + start, *values[3 * start : 3 * (start + rows)]],
        )


def _insert_keys(conn: sqlite3.Connection, stream: int, values: list[object]) -> None:
    """Keys of a stream, (key, position) each; a key it already holds is kept as it was."""
    for start, rows in _pieces(len(values) // 2):
        conn.execute(_keys_sql(rows), [stream, *values[2 * start : 2 * (start + rows)]])


def stored(pos: int, key: str | None, data: bytes, headers: str | None, at: float) -> StoredEntry:
    """An ``entries`` row (pos, key, data, headers, appended_at) as the entry it holds."""
    return StoredEntry(
        key=key,
        data=data,
        headers=json.loads(headers) if headers else {},
        offset=pos,
        appended_at=at,
    )


class _KeyHeld(Exception):
    """An append that assumed its keys new met one the stream holds."""


class SqliteStream(Stream):
    """One named stream in an SQLite file shared with the other streams."""

    def __init__(self, url: str, name: str) -> None:
        self.name = check_name(name, "stream")
        self.url = url
        self._what = f"stream {name!r}"
        self.db = sqlitedb.Database(url, self._what, pragmas=_PRAGMAS)
        self.stream_id = self._setup()
        # Whether the last unique append met keys the stream held (a replay, a
        # re-drain): the next one then looks them up first instead of assuming none.
        self._expect_held = False

    def _setup(self) -> int:
        with self.db.write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO streams (name) VALUES (?)", (self.name,))
            row = conn.execute("SELECT id FROM streams WHERE name = ?", (self.name,)).fetchone()
        return int(row[0])

    def _known(self, conn: sqlite3.Connection, keys: set[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(keys)
        for i in range(0, len(ordered), _CHUNK):
            chunk = ordered[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT key FROM stream_keys WHERE stream = ? AND key IN ({marks})",
                (self.stream_id, *chunk),
            )
            found.update(key for (key,) in rows)
        return found

    def _last(self, conn: sqlite3.Connection) -> tuple[int, float]:
        row = conn.execute(
            "SELECT last_offset, last_appended FROM streams WHERE id = ?", (self.stream_id,)
        ).fetchone()
        return int(row[0]), float(row[1])

    # the port
    def append(self, entries: Iterable[StreamEntry], unique: bool = False) -> list[int | None]:
        batch = checked_batch(entries, unique, self._what)
        if not batch:
            return []
        if unique and not self._expect_held:
            try:
                with self.db.write() as conn:
                    return self._append(conn, batch, True, None)
            except _KeyHeld:
                self._expect_held = True
        with self.db.write() as conn:
            held = self._known(conn, {e.key for e in batch if e.key}) if unique else set()
            if unique:
                self._expect_held = bool(held)
            return self._append(conn, batch, unique, held)

    def _append(
        self,
        conn: sqlite3.Connection,
        batch: list[StreamEntry],
        unique: bool,
        held: set[str] | None,
    ) -> list[int | None]:
        """Write the batch's rows in the open transaction; return each entry's offset.

        ``held`` is the batch's keys the stream already holds; None assumes it holds
        none of them, inserts the keys first and raises :class:`_KeyHeld` (rolling
        the transaction back) if it did: the look-up then runs, in a new one.
        """
        stream = self.stream_id
        last, last_at = self._last(conn)
        now = max(time.time(), last_at)
        first = last + 1  # the position of the first entry written
        seen = set() if held is None else held
        slots: list[int | None] = []
        rows: list[object] = []
        keys: list[object] = []
        encoded: dict[tuple[tuple[str, str], ...], str] = {}
        slot, remember = slots.append, seen.add
        for entry in batch:
            key = entry.key
            if unique and key is not None:
                if key in seen:
                    slot(None)
                    continue
                remember(key)
            last += 1
            slot(last)
            headers = None
            if entry.headers:
                # Entries of a batch often share headers (one device and type, one request).
                items = tuple(entry.headers.items())
                headers = encoded.get(items)
                if headers is None:
                    headers = encoded[items] = _HEADERS(entry.headers)
            rows += (key, entry.data, headers)
            if key is not None:
                keys += (key, last)
        if held is None:
            before = conn.total_changes
            _insert_keys(conn, stream, keys)
            if conn.total_changes - before != len(keys) // 2:
                raise _KeyHeld
            _insert_entries(conn, stream, now, first, rows)
        else:
            _insert_entries(conn, stream, now, first, rows)
            _insert_keys(conn, stream, keys)
        conn.execute(
            "UPDATE streams SET last_offset = ?, last_appended = ? WHERE id = ?",
            (last, now, stream),
        )
        return slots

    def read(self, after: int, limit: int) -> list[StoredEntry]:
        check_read(after, limit)
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT pos, key, data, headers, appended_at FROM entries "
                "WHERE stream = ? AND pos > ? ORDER BY pos LIMIT ?",
                (self.stream_id, after, limit),
            ).fetchall()
        return [stored(*row) for row in rows]

    def last_offset(self) -> int:
        with self.db.read() as conn:
            return self._last(conn)[0]

    def position(self, consumer: str) -> int:
        check_name(consumer, "consumer")
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT pos FROM consumers WHERE stream = ? AND name = ?",
                (self.stream_id, consumer),
            ).fetchone()
        return 0 if row is None else int(row[0])

    def _move(self, consumer: str, offset: int, backwards: bool) -> None:
        check_name(consumer, "consumer")
        with self.db.write() as conn:
            last = self._last(conn)[0]
            if not 0 <= offset <= last:
                raise ValueError(
                    f"consumer {consumer!r} of {self._what}: offset {offset} is outside "
                    f"0..{last} (the stream's last offset)"
                )
            new = "excluded.pos" if backwards else "max(pos, excluded.pos)"
            conn.execute(
                "INSERT INTO consumers (stream, name, pos) VALUES (?, ?, ?) "
                f"ON CONFLICT (stream, name) DO UPDATE SET pos = {new}",
                (self.stream_id, consumer, offset),
            )

    def commit(self, consumer: str, offset: int) -> None:
        self._move(consumer, offset, backwards=False)

    def reset(self, consumer: str, offset: int) -> None:
        self._move(consumer, offset, backwards=True)

    def trim(self, before: float) -> int:
        with self.db.write() as conn:
            # Append times never decrease along positions: the first entry appended at
            # or after the cut ends the prefix to remove (a walk over that prefix only).
            first = conn.execute(
                "SELECT pos FROM entries WHERE stream = ? AND appended_at >= ? "
                "ORDER BY pos LIMIT 1",
                (self.stream_id, before),
            ).fetchone()
            if first is None:
                cursor = conn.execute("DELETE FROM entries WHERE stream = ?", (self.stream_id,))
            else:
                cursor = conn.execute(
                    "DELETE FROM entries WHERE stream = ? AND pos < ?", (self.stream_id, first[0])
                )
            return cursor.rowcount

    def contains(self, keys: Iterable[str]) -> set[str]:
        wanted = set(keys)
        with self.db.read() as conn:
            return self._known(conn, wanted)

    def close(self) -> None:
        self.db.close()

    def __repr__(self) -> str:
        return f"SqliteStream({self.url!r}, {self.name!r})"
