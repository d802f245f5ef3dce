"""SQLite plumbing shared by the embedded engines (the streams and the telemetry store).

One place parses ``sqlite:///<path>[?synchronous=full|normal]`` URLs, opens a
connection in WAL mode with a busy timeout, and translates ``sqlite3`` errors into
tether's error tree. Only the embedded engines import this module.

URLs follow SQLAlchemy's form: ``sqlite:///relative/path`` and
``sqlite:////absolute/path``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import parse_qsl

from tether.errors import ConflictError, EngineError, SettingsError, TetherError

PREFIX = "sqlite:///"
BUSY_TIMEOUT_S = 30.0
_SYNC_MODES = ("full", "normal")
_PARAMS = {"synchronous": "full|normal"}


def parse_url(url: str, what: str) -> tuple[Path, dict[str, str]]:
    """The database path and query parameters of a ``sqlite:///`` URL.

    Raises :class:`SettingsError` naming the URL and the expected form.
    """
    if not url.startswith(PREFIX):
        raise SettingsError(
            f"{what} URL {url!r} is not an SQLite URL; use sqlite:///<relative path> "
            "or sqlite:////<absolute path>"
        )
    path_part, _, query = url[len(PREFIX) :].partition("?")
    if not path_part or path_part == ":memory:":
        raise SettingsError(f"{what} URL {url!r} names no database file; add a path after ///")
    params = dict(parse_qsl(query, keep_blank_values=True))
    for key, value in params.items():
        if key not in _PARAMS:
            raise SettingsError(
                f"{what} URL {url!r}: unknown parameter {key!r}; known: "
                + ", ".join(f"{k}={v}" for k, v in _PARAMS.items())
            )
        if key == "synchronous" and value not in _SYNC_MODES:
            raise SettingsError(
                f"{what} URL {url!r}: synchronous={value!r}; use synchronous=full "
                "(durable on power loss, the default) or synchronous=normal"
            )
    return Path(path_part), params


def translate(exc: sqlite3.Error, what: str, where: Path) -> TetherError:
    """The tether error for an ``sqlite3`` failure in ``what`` stored at ``where``."""
    if isinstance(exc, sqlite3.IntegrityError):
        return ConflictError(f"{what} at {where} refused a duplicate: {exc}")
    text = str(exc)
    if "locked" in text or "busy" in text:
        return EngineError(
            f"{what} at {where} stayed locked for {BUSY_TIMEOUT_S:.0f} s: another process "
            f"holds a long write transaction ({text})"
        )
    if "not a database" in text or "malformed" in text:
        return EngineError(f"{what} at {where} is not a usable SQLite database ({text})")
    if "readonly" in text or "unable to open" in text:
        return EngineError(f"{what} at {where} cannot be written: check the path's permissions")
    return EngineError(f"{what} at {where} failed: {text}")


def connect(
    url: str, what: str, *, pragmas: Mapping[str, str | int] | None = None
) -> tuple[sqlite3.Connection, Path]:
    """Open the database a URL names: autocommit mode, WAL, busy timeout, the given pragmas.

    The connection may be used from several threads; callers hold their own lock.
    """
    path, params = parse_url(url, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineError(
            f"{what}: cannot create the directory {path.parent} for {url!r}: {exc}"
        ) from exc
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise translate(exc, what, path) from exc
    try:
        for name, value in (pragmas or {}).items():
            conn.execute(f"PRAGMA {name}={value}")
        _wal(conn)
        conn.execute(f"PRAGMA synchronous={params.get('synchronous', 'full').upper()}")
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, what, path) from exc
    return conn, path


def _wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting out other processes doing the same.

    SQLite answers a journal-mode change "locked" at once, without its busy
    handler, while another connection is converting a new file or recovering its
    WAL; several processes opening one new database meet exactly that.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def transaction(conn: sqlite3.Connection, what: str, where: Path) -> Iterator[sqlite3.Connection]:
    """A write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back otherwise.

    ``BEGIN IMMEDIATE`` takes the database's write lock up front, so a
    read-then-write inside it cannot race another process.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise translate(exc, what, where) from exc


class Database:
    """One connection to an embedded engine's file, shared by threads under a lock.

    ``write()`` is a ``BEGIN IMMEDIATE`` transaction, ``read()`` a plain use of
    the connection; both hold the lock and translate ``sqlite3`` errors. After
    ``close()`` either says the ``what`` is closed.
    """

    def __init__(
        self, url: str, what: str, *, pragmas: Mapping[str, str | int] | None = None
    ) -> None:
        self.url = url
        self.what = what
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None
        self._conn, self.path = connect(url, what, pragmas=pragmas)

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise EngineError(f"the {self.what} at {self.url!r} is closed; open it again")
        return self._conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self._live(), self.what, self.path) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._live()
            except sqlite3.Error as exc:
                raise translate(exc, self.what, self.path) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
