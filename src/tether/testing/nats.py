"""NATS for tests: ``nats-server`` with JetStream, alone or as a cluster, on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from tether.errors import EngineError
from tether.testing.engines import LOOPBACK, Engine, ProcessEngine, find_binary, free_port

__all__ = ["NatsCluster", "NatsInstance"]


class NatsInstance(ProcessEngine):
    """``nats-server`` with JetStream on a free loopback port, monitoring on another."""

    name = "nats"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        jetstream: bool = True,
        server_name: str = "tether-test",
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(workdir, startup_timeout)
        self.jetstream = jetstream
        self.server_name = server_name
        self.extra_args = list(extra_args)
        self.host = LOOPBACK
        self.port = 0
        self.monitor_port = 0
        self._binary: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def store_dir(self) -> Path:
        return self.workdir / "jetstream"

    def _prepare(self) -> None:
        self._binary = find_binary("nats-server", "nats-server")
        if not self.port:
            self.port = free_port(self.host)
        if not self.monitor_port:
            self.monitor_port = free_port(self.host)

    def _argv(self) -> list[str]:
        if self._binary is None:
            self._binary = find_binary("nats-server", "nats-server")
        argv = [
            str(self._binary),
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-m",
            str(self.monitor_port),
            "-n",
            self.server_name,
        ]
        if self.jetstream:
            argv += ["-js", "-sd", str(self.store_dir)]
        return argv + self.extra_args

    def _launch(self) -> None:
        self._spawn(self._argv())

    def monitor(self, endpoint: str) -> tuple[int, dict[str, Any]]:
        """A monitoring endpoint's answer (``healthz``, ``varz``, ``jsz``, ``routez``...)."""
        try:
            with urllib.request.urlopen(f"{self.monitor_url}/{endpoint}", timeout=2) as answer:
                return int(answer.status), json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body or b"{}")
            except ValueError:
                return exc.code, {"error": body.decode(errors="replace")}

    def healthz(self) -> tuple[int, dict[str, Any]]:
        """``/healthz``: 200 once the server (and JetStream, if on) is ready."""
        return self.monitor("healthz")

    def _ready(self) -> bool:
        try:
            status, _ = self.healthz()
        except (OSError, ValueError):
            return False
        return status == 200

    def _signal_shutdown(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGINT)


class NatsCluster(Engine):
    """A JetStream cluster of ``size`` ``nats-server`` nodes on loopback."""

    name = "nats-cluster"

    def __init__(
        self,
        size: int = 3,
        workdir: Path | None = None,
        *,
        cluster_name: str = "tether-test",
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__(workdir, startup_timeout)
        if size < 1:
            raise EngineError("a NATS cluster needs at least one node")
        self.size = size
        self.cluster_name = cluster_name
        self.nodes: list[NatsInstance] = []

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (the form NATS clients accept)."""
        return ",".join(node.url for node in self.nodes)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self) -> Self:
        if self.nodes:
            return self
        root = self._make_workdir()
        route_ports = [free_port() for _ in range(self.size)]
        routes = ",".join(f"nats://{LOOPBACK}:{p}" for p in route_ports)
        try:
            for i, route_port in enumerate(route_ports):
                node = NatsInstance(
                    root / f"node-{i}",
                    server_name=f"{self.cluster_name}-{i}",
                    extra_args=[
                        "--cluster",
                        f"nats://{LOOPBACK}:{route_port}",
                        "--cluster_name",
                        self.cluster_name,
                        "--routes",
                        routes,
                    ],
                    startup_timeout=self.startup_timeout,
                )
                self.nodes.append(node)
                # Launch every node before waiting on any: JetStream is healthy only
                # once the nodes have met and elected a meta leader.
                node._make_workdir()
                node._prepare()
                node._prepared = True
                node._launch()
            for node in self.nodes:
                node._wait_ready()
            self._wait_for_leader()
        except BaseException:
            # Stop the processes but keep the nodes' directories: the error names their logs.
            for node in self.nodes:
                node._shutdown()
            self.nodes = []
            raise
        return self

    def _wait_for_leader(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            leaders = {
                node.monitor("jsz")[1].get("meta_cluster", {}).get("leader") for node in self.nodes
            }
            if len(leaders) == 1 and None not in leaders:
                return
            time.sleep(0.1)
        raise EngineError(
            f"the NATS cluster elected no JetStream meta leader within "
            f"{self.startup_timeout:.0f} s; the nodes' logs:\n{self.log()}"
        )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes = []
        self._remove_workdir()

    def log(self) -> str:
        return "\n".join(f"--- {node.server_name}\n{node.log()}" for node in self.nodes)
