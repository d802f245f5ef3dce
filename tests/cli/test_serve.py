"""``tether serve`` as a user runs it: a real process, real ports, Ctrl-C to stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tether.testing import free_port


def _tether(data_dir: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "--data-dir", str(data_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_serve_runs_http_and_mqtt_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    http, mqtt, internal, https = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "TETHER_HTTP__PORT": str(http),
        "TETHER_MQTT__PORT": str(mqtt),
        "TETHER_MQTT__INTERNAL_PORT": str(internal),
        "TETHER_HTTPS__PORT": str(https),
    }
    init = _tether(tmp_path, "ca", "init", "--tenant", "acme", env=env)
    assert init.wait(60) == 0, init.stdout.read() if init.stdout else ""
    serve = _tether(tmp_path, "serve", env=env)
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{http}/healthz", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None and health["status"] == "ok"
        assert health["tenants"] == ["acme"]
        with socket.create_connection(("127.0.0.1", mqtt), timeout=2):
            pass  # the broker tether started is listening
        with socket.create_connection(("127.0.0.1", https), timeout=2):
            pass  # and the HTTPS records door
    finally:
        serve.send_signal(signal.SIGINT)
        out, _ = serve.communicate(timeout=30)
    assert serve.returncode == 0, out
    assert "stopped: HTTP, MQTT front door" in out
    with socket.socket() as s:  # the broker went away with it
        assert s.connect_ex(("127.0.0.1", mqtt)) != 0


def test_serve_without_a_tenant_says_what_to_do(tmp_path: Path) -> None:
    http = free_port()
    env = {**os.environ, "TETHER_HTTP__PORT": str(http)}
    serve = _tether(tmp_path, "serve", env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{http}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
    finally:
        serve.send_signal(signal.SIGINT)
        out, _ = serve.communicate(timeout=30)
    assert "tether ca init --tenant NAME" in out
