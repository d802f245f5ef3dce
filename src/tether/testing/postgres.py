"""PostgreSQL for tests: a throwaway cluster on a free loopback port."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from tether.errors import EngineError
from tether.testing.engines import LOOPBACK, ProcessEngine, find_binary, free_port

__all__ = ["PostgresInstance", "postgres_bin_dir"]

_PG_TOOLS = ("initdb", "postgres", "pg_isready", "psql")


def postgres_bin_dir() -> Path:
    """The directory holding PostgreSQL's binaries (``initdb``, ``postgres``, ``psql``...).

    Looks where ``initdb`` on PATH really lives, then in Debian's
    ``/usr/lib/postgresql/<version>/bin`` (newest version first).
    """
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates += [Path(os.path.realpath(on_path)).parent, Path(on_path).parent]

    def version(path: str) -> tuple[int, ...]:
        number = Path(path).parent.name
        return tuple(int(p) for p in number.split(".") if p.isdigit())

    candidates += [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    ]
    for directory in candidates:
        if all(os.access(directory / tool, os.X_OK) for tool in _PG_TOOLS):
            return directory
    raise EngineError(
        f"PostgreSQL's binaries ({', '.join(_PG_TOOLS)}) were not found together beside "
        "initdb on PATH or in "
        "/usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql)"
    )


class PostgresInstance(ProcessEngine):
    """A throwaway PostgreSQL cluster on a free loopback port, trusting local connections.

    PostgreSQL refuses to run as root, so when the tests do, ``initdb`` and ``postgres``
    run as ``user`` (``postgres``, which Debian's package creates) through ``runuser``
    and the working directory is handed to that user. The working directory must
    then be reachable by it: the default, a fresh directory in the system's temporary
    directory, is; pytest's ``tmp_path`` (mode 0700 under root) is not.
    """

    name = "postgres"
    #: Settings for speed: a test cluster need not survive a power cut. Commits stay
    #: synchronous (WAL written before the commit returns), so everything committed
    #: survives a killed server, which is what fault tests do.
    DEFAULT_SETTINGS: ClassVar[Mapping[str, str]] = {
        "fsync": "off",
        "full_page_writes": "off",
        "max_connections": "100",
        "shared_buffers": "32MB",
    }

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        user: str = "postgres",
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__(workdir, startup_timeout)
        self.user = user
        self.settings = {**self.DEFAULT_SETTINGS, **(settings or {})}
        self.port = 0
        self.host = LOOPBACK
        self._bin: Path | None = None
        self._run_as: list[str] = []

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.workdir / "socket"

    @property
    def url(self) -> str:
        """A SQLAlchemy-style URL of the ``postgres`` database."""
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _tool(self, name: str) -> str:
        if self._bin is None:
            self._bin = postgres_bin_dir()
        return str(self._bin / name)

    def _prepare(self) -> None:
        self._bin = postgres_bin_dir()
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(self.user)
            except KeyError:
                raise EngineError(
                    f"PostgreSQL refuses to run as root and there is no user {self.user!r} to "
                    "run it as; create one (Debian: apt-get install postgresql creates "
                    "'postgres') or run the tests as an unprivileged user"
                ) from None
            runuser = find_binary("runuser", "util-linux")
            self._run_as = [str(runuser), "-u", self.user, "--"]
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
            os.chmod(self.workdir, 0o700)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._run_as:
            account = pwd.getpwnam(self.user)
            os.chown(self.socket_dir, account.pw_uid, account.pw_gid)
        argv = [
            *self._run_as,
            self._tool("initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ]
        with self.log_path.open("ab") as log:
            done = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
            )
        if done.returncode != 0:
            raise self._fail(f"initdb exited with code {done.returncode}")
        if not self.port:
            self.port = free_port(self.host)

    def _launch(self) -> None:
        argv = [
            *self._run_as,
            self._tool("postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
        ]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        self._spawn(argv)

    def _ready(self) -> bool:
        done = subprocess.run(
            [
                self._tool("pg_isready"),
                "-q",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-t",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return done.returncode == 0

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def _signal_shutdown(self, proc: subprocess.Popen[bytes]) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions and
        # disconnect clients. Sent to the postmaster itself, not to runuser (which
        # would pass on SIGTERM, a "smart" shutdown that waits for every client).
        pid = self._postmaster_pid()
        os.kill(pid if pid is not None else proc.pid, signal.SIGINT)

    def kill(self) -> None:
        pid = self._postmaster_pid()
        if pid is not None and self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            # SIGKILL is delivered asynchronously: wait until the postmaster is gone.
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        super().kill()

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through ``psql`` and return its unaligned output."""
        done = subprocess.run(
            [
                self._tool("psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise EngineError(f"psql failed on {sql!r}: {done.stderr.strip()}")
        return done.stdout.strip()

    @staticmethod
    def _check_name(name: str) -> None:
        if not name.replace("_", "").isalnum() or len(name) > 63:
            raise EngineError(
                f"{name!r} is not a plain database name (letters, digits, '_', at most 63)"
            )

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database and return its URL (one per test keeps tests apart).

        With ``template``, the new database is a file copy of that one (which must
        have no open connections): a migrated template makes a fresh, migrated
        database in a fraction of the time migrating takes.
        """
        self._check_name(name)
        if template is None:
            self.psql(f'CREATE DATABASE "{name}"')
        else:
            self._check_name(template)
            self.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection still open to it."""
        self._check_name(name)
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
