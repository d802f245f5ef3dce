"""PostgreSQL plumbing shared by the production engines (the telemetry store, migrations).

One place reads ``postgresql://`` URLs, shows them without their password,
connects with psycopg 3 and a connect timeout, keeps a small pool of
connections, and translates psycopg's errors into tether's error tree. Only the
PostgreSQL engines import this module.

URLs are libpq's, as SQLAlchemy writes them::

    postgresql://user:password@host:5432/database?sslmode=require
    postgresql+psycopg://user@host/database

Query parameters are libpq's own (``sslmode``, ``connect_timeout``,
``application_name``...). ``connect_timeout`` defaults to 10 seconds, so an
unreachable host fails in bounded time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pgerrors
from psycopg.pq import TransactionStatus

from tether.errors import ConflictError, EngineError, SettingsError, TetherError

SCHEMES = ("postgresql", "postgresql+psycopg")
CONNECT_TIMEOUT_S = 10
POOL_SIZE = 8
Connection = psycopg.Connection[tuple[Any, ...]]


def is_postgres_url(url: str) -> bool:
    return url.partition(":")[0] in SCHEMES and url.partition(":")[2].startswith("//")


def shown(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: safe for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unreadable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def scrub(text: str, url: str) -> str:
    """``text`` with the URL's password taken out, wherever a driver may have echoed it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text


def conninfo(url: str, what: str) -> str:
    """The libpq URI for a tether ``postgresql://`` URL (driver suffix dropped, timeout added).

    Raises :class:`SettingsError` when the URL is not a PostgreSQL URL.
    """
    scheme, _, rest = url.partition(":")
    if scheme not in SCHEMES or not rest.startswith("//"):
        raise SettingsError(
            f"{what} URL {shown(url)!r} is not a PostgreSQL URL; use "
            "postgresql://user:password@host:5432/database"
        )
    uri = "postgresql:" + rest
    query = urlsplit(uri).query
    if "connect_timeout" not in dict(parse_qsl(query, keep_blank_values=True)):
        uri += ("&" if query else ("" if uri.endswith("?") else "?")) + (
            f"connect_timeout={CONNECT_TIMEOUT_S}"
        )
    return uri


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL for a ``postgresql://`` URL: the psycopg 3 driver, always."""
    scheme, _, rest = url.partition(":")
    return f"postgresql+psycopg:{rest}" if scheme == "postgresql" else url


def unreachable(what: str, url: str, exc: BaseException) -> EngineError:
    """The error for a database that cannot be reached (or refuses the login)."""
    detail = scrub(str(exc).strip(), url)
    # libpq repeats the attempt per address; its first line says enough.
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    hint = (
        "check that PostgreSQL is running and that the URL names the right host, port, "
        "user and database"
    )
    if "does not exist" in detail and "database" in detail:
        hint = "create the database (createdb, or CREATE DATABASE) and run `tether migrate`"
    elif "password" in detail or "authentication" in detail:
        hint = "check the user and password in the URL (or ~/.pgpass)"
    return EngineError(f"cannot reach the {what} at {shown(url)}: {reason}; {hint}")


def translate(exc: psycopg.Error, what: str, url: str) -> TetherError:
    """The tether error for a psycopg failure in ``what`` at ``url``."""
    text = scrub(str(exc).strip(), url)
    if isinstance(exc, pgerrors.UniqueViolation):
        return ConflictError(f"{what} at {shown(url)} refused a duplicate: {text}")
    if isinstance(exc, pgerrors.QueryCanceled):
        return EngineError(f"{what} at {shown(url)} cancelled a statement: {text}")
    if isinstance(exc, psycopg.OperationalError):
        return EngineError(
            f"{what} at {shown(url)} failed: {text or 'the connection was lost'}; "
            "check that PostgreSQL is running"
        )
    return EngineError(f"{what} at {shown(url)} failed: {text}")


def connect(url: str, what: str) -> Connection:
    """A new autocommit connection; :class:`EngineError` when the server cannot be reached."""
    info = conninfo(url, what)
    try:
        return psycopg.connect(info, autocommit=True)
    except psycopg.Error as exc:
        raise unreachable(what, url, exc) from None


class Pool:
    """At most ``size`` autocommit connections to one database, made on demand.

    ``connection()`` lends one to the calling thread; a connection that broke, or
    that is returned inside a transaction, is closed rather than lent again.
    """

    def __init__(self, url: str, what: str, size: int = POOL_SIZE) -> None:
        self.url = url
        self.what = what
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError(f"the {self.what} at {shown(self.url)} is closed; open it again")

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        self._check_open()
        with self._slots:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = connect(self.url, self.what)
            try:
                yield conn
            finally:
                self._give_back(conn)

    def discard_idle(self) -> None:
        """Close the idle connections (after the server restarted, they are all dead)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(psycopg.Error):
                conn.close()

    def _give_back(self, conn: Connection) -> None:
        reusable = (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == TransactionStatus.IDLE
        )
        with self._lock:
            if reusable and not self._closed:
                self._idle.append(conn)
                return
        with suppress(psycopg.Error):
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.discard_idle()
