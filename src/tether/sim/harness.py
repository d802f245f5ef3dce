"""The platform a simulated run drives: fresh, embedded, on the simulated clock, doors open.

``SimPlatform`` opens a platform on the embedded engines in its own directory,
on the simulated clock (certificates and revocation lists stay on the
machine's clock, which Mosquitto and TLS clients judge them by), makes the
scenario's tenant, and runs what ``tether serve`` runs: Mosquitto with mutual
TLS and the ingest bridge (when the fleet speaks MQTT), the gate worker, the
projector, and the HTTPS door on a free port. Devices reach it only through
those doors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from tether.gate.worker import GATE_GROUP
from tether.platform import Platform
from tether.runtime import Runtime
from tether.service.app import create_app
from tether.service.auth import admin_token
from tether.service.tls import https_config
from tether.settings import load_settings
from tether.sim.clock import SimClock
from tether.sim.errors import SimulationError
from tether.stream.group import WorkGroup, open_group
from tether.testing.engines import free_port

HOST = "127.0.0.1"


class SimPlatform:
    def __init__(self, directory: Path, clock: SimClock, tenant: str, mqtt: bool) -> None:
        self.directory = directory
        self.clock = clock
        self.tenant = tenant
        self.mqtt = mqtt
        self.https_port = free_port()
        settings = load_settings(
            {
                "data_dir": str(directory),
                "mqtt": {"enabled": mqtt, "port": free_port(), "internal_port": free_port()},
                "https": {"port": self.https_port, "hostnames": [HOST, "localhost"]},
            },
            config_file=directory / "tether.toml",
            environ={},
        )
        self.platform = Platform.open(settings, clock=clock, pki_clock=time.time)
        self.runtime: Runtime | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._monitor: WorkGroup | None = None

    @property
    def operator_token(self) -> str:
        return admin_token(self.platform.settings)

    @property
    def service_ca_pem(self) -> str:
        return self.platform.authority.service_ca().cert_pem

    @property
    def broker_ca(self) -> Path:
        if self.runtime is None or self.runtime.front_door is None:
            raise SimulationError("the MQTT front door is not running")
        return self.runtime.front_door.layout.service_ca

    @property
    def mqtt_port(self) -> int:
        return self.platform.settings.mqtt.port

    def start(self) -> None:
        p = self.platform
        p.authority.init_tenant(self.tenant)
        self.runtime = Runtime(p, mqtt=self.mqtt)
        self.runtime.start()
        config = https_config(
            create_app(p), p.authority, self.directory / "https", HOST, self.https_port, [HOST]
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="sim-https", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise SimulationError(
                    f"the HTTPS door did not start on {HOST}:{self.https_port}; is the port free?"
                )
            time.sleep(0.02)
        if self.mqtt:
            self._monitor = open_group(p.settings.resolved_stream_url(), "raw", GATE_GROUP)

    def backlog(self) -> int:
        """Records in flight inside the platform: raw not yet judged, events not yet projected."""
        p = self.platform
        events = p.stream("events")
        unprojected = events.last_offset() - events.position("projector")
        unjudged = self._monitor.pending() if self._monitor is not None else 0
        return max(0, unprojected) + unjudged

    def land(self, timeout: float = 60.0) -> None:
        """Wait until nothing is in flight inside the platform (an adversary's before and after)."""
        deadline = time.monotonic() + timeout
        while self.backlog() > 0:
            if time.monotonic() > deadline:
                raise SimulationError(
                    f"the platform still had {self.backlog()} records in flight after {timeout:g} "
                    "s; is the projector running?"
                )
            time.sleep(0.05)
        time.sleep(0.2)  # what was being written when the backlog emptied

    def settle(
        self,
        expected: int,
        idle_seconds: float = 10.0,
        timeout: float = 300.0,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        """Wait until the telemetry store holds ``expected`` events and nothing is in flight.

        Returns when that is so, or when nothing has moved for ``idle_seconds``
        (the comparison then says what is missing), after ``timeout``, or as
        soon as ``stop()`` is true.
        """
        deadline = time.monotonic() + timeout
        last: tuple[int, int, int] | None = None
        still_since = time.monotonic()
        while time.monotonic() < deadline and not (stop is not None and stop()):
            count = self.platform.telemetry.count(self.tenant)
            received = self.runtime.bridge.received if self.runtime and self.runtime.bridge else 0
            state = (count, self.backlog(), received)
            if count >= expected and state[1] == 0:
                time.sleep(0.3)  # a last look: anything still arriving would show now
                if self.platform.telemetry.count(self.tenant) == count and self.backlog() == 0:
                    return count
            if state != last:
                last, still_since = state, time.monotonic()
            elif time.monotonic() - still_since > idle_seconds and state[1] == 0:
                return count
            time.sleep(0.1)
        return self.platform.telemetry.count(self.tenant)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self.runtime is not None:
            self.runtime.stop()
        if self._monitor is not None:
            self._monitor.close()
        self.platform.close()
