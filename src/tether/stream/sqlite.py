"""The embedded stream engine: named streams in one SQLite file.

Each append is one ``BEGIN IMMEDIATE`` transaction, so the uniqueness check, the
offsets it hands out and the rows it writes cannot race another thread or
process. Keys live in their own table, which trimming leaves alone. The
database runs in WAL mode with ``synchronous=FULL`` unless the URL says
``?synchronous=normal``: an append is on disk when it returns.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from tether.errors import EngineError
from tether.store import sqlitedb
from tether.stream.base import StoredEntry, Stream, StreamEntry, check_name

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
CREATE INDEX IF NOT EXISTS entries_by_age ON entries (stream, appended_at);
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


class SqliteStream(Stream):
    """One named stream in an SQLite file shared with the other streams."""

    def __init__(self, url: str, name: str) -> None:
        self.name = check_name(name, "stream")
        self.url = url
        self._what = f"stream {name!r}"
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        conn, self._path = sqlitedb.connect(url, self._what)
        self._conn = conn
        self._id = self._setup()

    def _setup(self) -> int:
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO streams (name) VALUES (?)", (self.name,))
            row = conn.execute("SELECT id FROM streams WHERE name = ?", (self.name,)).fetchone()
        return int(row[0])

    # plumbing
    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise EngineError(f"{self._what} at {self.url!r} is closed; open it again")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, sqlitedb.transaction(self._live(), self._what, self._path) as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._live()
            except sqlite3.Error as exc:
                raise sqlitedb.translate(exc, self._what, self._path) from exc

    def _known(self, conn: sqlite3.Connection, keys: set[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(keys)
        for i in range(0, len(ordered), _CHUNK):
            chunk = ordered[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT key FROM stream_keys WHERE stream = ? AND key IN ({marks})",
                (self._id, *chunk),
            )
            found.update(key for (key,) in rows)
        return found

    def _last(self, conn: sqlite3.Connection) -> tuple[int, float]:
        row = conn.execute(
            "SELECT last_offset, last_appended FROM streams WHERE id = ?", (self._id,)
        ).fetchone()
        return int(row[0]), float(row[1])

    # the port
    def append(self, entries: Iterable[StreamEntry], unique: bool = False) -> list[int | None]:
        batch = list(entries)
        for entry in batch:
            if not isinstance(entry, StreamEntry):
                raise ValueError(f"append takes StreamEntry objects, got {type(entry).__name__}")
            if unique and entry.key is None:
                raise ValueError(f"a unique append to {self._what} needs a key on every entry")
        if not batch:
            return []
        with self._write() as conn:
            last, last_at = self._last(conn)
            now = max(time.time(), last_at)
            seen = self._known(conn, {e.key for e in batch if e.key}) if unique else set()
            slots: list[int | None] = []
            rows = []
            for entry in batch:
                if unique and entry.key is not None:
                    if entry.key in seen:
                        slots.append(None)
                        continue
                    seen.add(entry.key)
                last += 1
                slots.append(last)
                headers = json.dumps(entry.headers, sort_keys=True) if entry.headers else None
                rows.append((self._id, last, entry.key, entry.data, headers, now))
            conn.executemany(
                "INSERT INTO entries (stream, pos, key, data, headers, appended_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "INSERT OR IGNORE INTO stream_keys (stream, key, pos) VALUES (?, ?, ?)",
                [(self._id, key, pos) for (_, pos, key, _, _, _) in rows if key is not None],
            )
            conn.execute(
                "UPDATE streams SET last_offset = ?, last_appended = ? WHERE id = ?",
                (last, now, self._id),
            )
        return slots

    def read(self, after: int, limit: int) -> list[StoredEntry]:
        if after < 0 or limit < 1:
            raise ValueError(f"read needs after >= 0 and limit >= 1, got {after}, {limit}")
        with self._read() as conn:
            rows = conn.execute(
                "SELECT pos, key, data, headers, appended_at FROM entries "
                "WHERE stream = ? AND pos > ? ORDER BY pos LIMIT ?",
                (self._id, after, limit),
            ).fetchall()
        return [
            StoredEntry(
                key=key,
                data=data,
                headers=json.loads(headers) if headers else {},
                offset=pos,
                appended_at=at,
            )
            for pos, key, data, headers, at in rows
        ]

    def last_offset(self) -> int:
        with self._read() as conn:
            return self._last(conn)[0]

    def position(self, consumer: str) -> int:
        check_name(consumer, "consumer")
        with self._read() as conn:
            row = conn.execute(
                "SELECT pos FROM consumers WHERE stream = ? AND name = ?", (self._id, consumer)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def _move(self, consumer: str, offset: int, backwards: bool) -> None:
        check_name(consumer, "consumer")
        with self._write() as conn:
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
                (self._id, consumer, offset),
            )

    def commit(self, consumer: str, offset: int) -> None:
        self._move(consumer, offset, backwards=False)

    def reset(self, consumer: str, offset: int) -> None:
        self._move(consumer, offset, backwards=True)

    def trim(self, before: float) -> int:
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM entries WHERE stream = ? AND appended_at < ?", (self._id, before)
            )
            return cursor.rowcount

    def contains(self, keys: Iterable[str]) -> set[str]:
        wanted = set(keys)
        with self._read() as conn:
            return self._known(conn, wanted)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SqliteStream({self.url!r}, {self.name!r})"
