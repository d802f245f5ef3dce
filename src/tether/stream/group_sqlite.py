"""Work groups on the embedded stream engine, in the stream's own SQLite file.

A group is a row (``floor``: every offset up to it is done; ``claimed_to``: the
highest offset ever handed out) and a lease per entry handed out above the
floor and not yet done (its expiry, or a done mark). Claims and acks are each
one ``BEGIN IMMEDIATE`` transaction, so workers in several processes never get
the same live lease. The floor moves up over the done entries, whose leases are
then deleted: the table holds only the window of work in progress.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from tether.stream.base import StoredEntry
from tether.stream.group import WorkGroup
from tether.stream.sqlite import SqliteStream, stored

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS work_groups (
        stream INTEGER NOT NULL,
        name TEXT NOT NULL,
        floor INTEGER NOT NULL,
        claimed_to INTEGER NOT NULL,
        PRIMARY KEY (stream, name)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS work_leases (
        stream INTEGER NOT NULL,
        name TEXT NOT NULL,
        pos INTEGER NOT NULL,
        until REAL NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (stream, name, pos)
    ) WITHOUT ROWID""",
)
_CHUNK = 500


class SqliteGroup(WorkGroup):
    """A work group over one stream of an SQLite stream file."""

    def __init__(self, url: str, stream: str, group: str, lease_seconds: float) -> None:
        self.stream = stream
        self.group = group
        self.lease_seconds = lease_seconds
        # The stream's own connection, schema and transactions (same engine, same file).
        self._stream = SqliteStream(url, stream)
        self._id = self._stream.stream_id
        with self._stream.db.write() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO work_groups (stream, name, floor, claimed_to) "
                "VALUES (?, ?, 0, 0)",
                (self._id, group),
            )

    def claim(self, limit: int) -> list[StoredEntry]:
        if limit < 1:
            raise ValueError(f"claim needs limit >= 1, got {limit}")
        key = (self._id, self.group)
        with self._stream.db.write() as conn:
            now = time.time()
            until = now + self.lease_seconds
            expired = [
                pos
                for (pos,) in conn.execute(
                    "SELECT pos FROM work_leases WHERE stream = ? AND name = ? AND done = 0 "
                    "AND until <= ? ORDER BY pos LIMIT ?",
                    (*key, now, limit),
                )
            ]
            (claimed_to,) = conn.execute(
                "SELECT claimed_to FROM work_groups WHERE stream = ? AND name = ?", key
            ).fetchone()
            fresh = [
                pos
                for (pos,) in conn.execute(
                    "SELECT pos FROM entries WHERE stream = ? AND pos > ? ORDER BY pos LIMIT ?",
                    (self._id, claimed_to, limit - len(expired)),
                )
            ]
            rows = self._rows(conn, expired + fresh)
            found = {entry.offset for entry in rows}
            gone = [pos for pos in expired if pos not in found]  # trimmed while leased
            conn.executemany(
                "UPDATE work_leases SET until = ? WHERE stream = ? AND name = ? AND pos = ?",
                [(until, *key, pos) for pos in expired if pos in found],
            )
            conn.executemany(
                "INSERT INTO work_leases (stream, name, pos, until) VALUES (?, ?, ?, ?)",
                [(*key, pos, until) for pos in fresh],
            )
            if fresh:
                conn.execute(
                    "UPDATE work_groups SET claimed_to = ? WHERE stream = ? AND name = ?",
                    (fresh[-1], *key),
                )
            if gone:
                self._done(conn, gone)
        return rows

    def _rows(self, conn: sqlite3.Connection, positions: list[int]) -> list[StoredEntry]:
        rows: list[StoredEntry] = []
        for i in range(0, len(positions), _CHUNK):
            chunk = positions[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found = {
                row[0]: row
                for row in conn.execute(
                    "SELECT pos, key, data, headers, appended_at FROM entries "
                    f"WHERE stream = ? AND pos IN ({marks})",
                    (self._id, *chunk),
                )
            }
            rows += [stored(*found[pos]) for pos in chunk if pos in found]
        return rows

    def ack(self, offsets: Iterable[int]) -> None:
        done = sorted(set(offsets))
        if done:
            with self._stream.db.write() as conn:
                self._done(conn, done)

    def _done(self, conn: sqlite3.Connection, positions: list[int]) -> None:
        key = (self._id, self.group)
        conn.executemany(
            "UPDATE work_leases SET done = 1 WHERE stream = ? AND name = ? AND pos = ?",
            [(*key, pos) for pos in positions],
        )
        (first_open,) = conn.execute(
            "SELECT min(pos) FROM work_leases WHERE stream = ? AND name = ? AND done = 0", key
        ).fetchone()
        (claimed_to,) = conn.execute(
            "SELECT claimed_to FROM work_groups WHERE stream = ? AND name = ?", key
        ).fetchone()
        floor = claimed_to if first_open is None else first_open - 1
        conn.execute(
            "DELETE FROM work_leases WHERE stream = ? AND name = ? AND pos <= ?", (*key, floor)
        )
        conn.execute(
            "UPDATE work_groups SET floor = ? WHERE stream = ? AND name = ?", (floor, *key)
        )

    def pending(self) -> int:
        key = (self._id, self.group)
        with self._stream.db.write() as conn:
            (floor,) = conn.execute(
                "SELECT floor FROM work_groups WHERE stream = ? AND name = ?", key
            ).fetchone()
            (above,) = conn.execute(
                "SELECT count(*) FROM entries WHERE stream = ? AND pos > ?", (self._id, floor)
            ).fetchone()
            (done,) = conn.execute(
                "SELECT count(*) FROM work_leases WHERE stream = ? AND name = ? AND done = 1",
                key,
            ).fetchone()
        return int(above) - int(done)

    def close(self) -> None:
        self._stream.close()

    def __repr__(self) -> str:
        return f"SqliteGroup({self._stream.url!r}, {self.stream!r}, {self.group!r})"
