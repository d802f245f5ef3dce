"""``tether worker`` processes for fault tests and benchmarks: start them, stop them."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path


def start_worker(config: Path, roles: Iterable[str], log: Path) -> subprocess.Popen[bytes]:
    """``tether --config CONFIG worker --ROLE...`` in a process of its own, appending to ``log``."""
    argv = [sys.executable, "-m", "tether.cli.main", "--config", str(config), "worker"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [*argv, *(f"--{role}" for role in roles)], stdout=out, stderr=subprocess.STDOUT
        )


def stop_processes(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    """SIGTERM every process still running, wait for each, SIGKILL any that outlasts ``timeout``."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
