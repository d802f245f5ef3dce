"""The harness's common shape, and the helpers every engine uses.

Every engine is a small class with the same shape: construct it, ``start()`` it (or
use it as a context manager), read its ``url``, ``stop()`` it. ``log()`` returns the
end of what the engine wrote, and every failure raises
:class:`~tether.errors.EngineError` with that log, or, when a binary is missing, the
Debian package that provides it. Nothing here skips: a test that needs a missing
engine fails.

Engines own a temporary working directory unless given one, and remove it on
``stop()``; a failed ``start()`` leaves it in place for its log. The engines
themselves live one per module: :mod:`.postgres`, :mod:`.nats`, :mod:`.softhsm`
and :mod:`.mosquitto`.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from tether.errors import EngineError

__all__ = ["LOOPBACK", "Engine", "ProcessEngine", "find_binary", "free_port", "log_tail"]

LOOPBACK = "127.0.0.1"
# Where Debian installs daemons; not on an unprivileged user's PATH.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
_LOG_TAIL_LINES = 40


# Ports below Linux's ephemeral range (32768-60999): the kernel never hands these to
# outgoing connections, so a port found free here is not taken a moment later by
# some client's connect() before the engine binds it.
_PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now, outside the ephemeral range."""
    for _ in range(200):
        port = random.randint(*_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, package: str, extra_dirs: Sequence[str] = ()) -> Path:
    """The path of an executable on PATH, in the sbin directories or in ``extra_dirs``.

    Raises EngineError naming the Debian ``package`` that provides it.
    """
    found = shutil.which(name) or shutil.which(
        name, path=os.pathsep.join([*extra_dirs, *_SBIN_DIRS])
    )
    if found is None:
        raise EngineError(
            f"the {name!r} binary was not found on PATH or in {', '.join(_SBIN_DIRS)}; "
            f"install it (Debian: apt-get install {package})"
        )
    return Path(found)


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" if there is none yet)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Engine(ABC):
    """The common shape: a context manager with ``start``, ``stop``, ``url`` and ``log``."""

    #: The engine's name in messages.
    name: ClassVar[str] = "engine"

    def __init__(self, workdir: Path | None = None, startup_timeout: float = 30.0) -> None:
        self._given_workdir = workdir
        self._workdir: Path | None = None
        self.startup_timeout = startup_timeout

    @property
    def workdir(self) -> Path:
        """The engine's working directory (data, configuration, log)."""
        if self._workdir is None:
            raise EngineError(f"{self.name} has not been started")
        return self._workdir

    def _make_workdir(self) -> Path:
        if self._workdir is None:
            if self._given_workdir is not None:
                self._given_workdir.mkdir(parents=True, exist_ok=True)
                self._workdir = self._given_workdir
            else:
                self._workdir = Path(tempfile.mkdtemp(prefix=f"tether-{self.name}-"))
        return self._workdir

    def _remove_workdir(self) -> None:
        if self._workdir is not None and self._given_workdir is None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    @property
    @abstractmethod
    def url(self) -> str:
        """How a client reaches the engine."""

    @abstractmethod
    def start(self) -> Self:
        """Start the engine and wait until it answers; EngineError if it does not."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the engine and remove what it owns; safe to call twice."""

    @abstractmethod
    def log(self) -> str:
        """The end of what the engine wrote, for error messages."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._workdir is not None else "not started"
        return f"<{type(self).__name__} {where}>"


class ProcessEngine(Engine):
    """An engine that is one server process writing to a log file in its workdir."""

    def __init__(self, workdir: Path | None = None, startup_timeout: float = 30.0) -> None:
        super().__init__(workdir, startup_timeout)
        self.proc: subprocess.Popen[bytes] | None = None
        self._prepared = False

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log(self) -> str:
        return log_tail(self.log_path) if self._workdir is not None else ""

    def _fail(self, problem: str) -> EngineError:
        return EngineError(f"{problem}; its log ({self.log_path}) ends:\n{self.log()}")

    def _spawn(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=dict(env) if env is not None else None,
            )

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise self._fail(f"{self.name} exited with code {self.proc.returncode} while starting")

    def _prepare(self) -> None:
        """One-time set-up before the first launch (for example initdb)."""

    @abstractmethod
    def _launch(self) -> None:
        """Start the server process."""

    @abstractmethod
    def _ready(self) -> bool:
        """Whether the server answers yet."""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self._ready():
                return
            time.sleep(0.05)
        raise self._fail(f"{self.name} did not answer within {self.startup_timeout:.0f} s")

    def start(self) -> Self:
        if self.running():
            return self
        self._make_workdir()
        try:
            if not self._prepared:
                self._prepare()
                self._prepared = True
            self._launch()
            self._wait_ready()
        except BaseException:
            # Stop the process but keep the working directory: the error names its log.
            self._shutdown()
            raise
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal_shutdown(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGTERM)

    def _shutdown(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._signal_shutdown(proc)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Whatever the server left in its process group (it was started in its own session).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def restart(self) -> None:
        """Stop the server process and start it again on the same port with the same data."""
        self._shutdown()
        self._launch()
        self._wait_ready()

    def kill(self) -> None:
        """SIGKILL the server (for fault tests); ``restart()`` brings it back."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        self._shutdown()
        self._prepared = False
        self._remove_workdir()
