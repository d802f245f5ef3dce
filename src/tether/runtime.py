"""What ``tether serve`` runs beside its HTTP servers.

The MQTT front door (Mosquitto and its revocation enforcer), the ingest bridge,
the gate worker that judges MQTT records, the projector that fills the telemetry
store and device state, the reject log, and the raw stream's retention. Each
loop runs in its own thread and survives its own failures: a failed pass is
logged and retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from tether.contract.codes import ACCEPTED, REJECTED
from tether.doors.mqtt.bridge import IngestBridge
from tether.doors.mqtt.broker import legacy_topics
from tether.doors.mqtt.frontdoor import MqttFrontDoor
from tether.gate.pipeline import Outcome
from tether.gate.worker import GateWorker
from tether.platform import Platform
from tether.projections.state import agreed_capabilities

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, platform: Platform, mqtt: bool = True, idle_seconds: float = 0.05) -> None:
        self.platform = platform
        self.mqtt = mqtt
        self.idle_seconds = idle_seconds
        self.front_door: MqttFrontDoor | None = None
        self.bridge: IngestBridge | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._trimmed_at = float("-inf")

    def start(self) -> None:
        p = self.platform
        if self.mqtt:
            self.front_door = MqttFrontDoor(p)
            self.front_door.start()
            self.bridge = IngestBridge(
                self.front_door.layout,
                p.settings.mqtt,
                p.stream("raw"),
                legacy_topics(p.settings.mqtt, p.catalog),
                p.clock,
            )
            self.bridge.start()
        worker = GateWorker(p.stream("raw"), p.gate, self._notify, p.settings.ingest.batch)
        self._loop("gate-worker", worker.run_once)
        self._loop("projector", p.projector.run_once)
        self._loop("rejects", p.rejects.run_once)
        self._loop("retention", self._trim_raw)

    def _loop(self, name: str, step: Callable[[], int]) -> None:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    done = step()
                except Exception:  # a failed pass must not end the loop
                    log.exception("%s failed; retrying", name)
                    done = 0
                if not done:
                    self._stop.wait(self.idle_seconds)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _trim_raw(self) -> int:
        """Drop raw records past their retention, once an hour; they stay replayable until."""
        now = time.monotonic()
        if now - self._trimmed_at < 3600:
            return 0
        self._trimmed_at = now
        cutoff = self.platform.clock() - self.platform.settings.raw_retention_days * 86400
        removed = self.platform.stream("raw").trim(cutoff)
        if removed:
            log.info("dropped %d raw records older than the retention window", removed)
        return 0

    def _notify(self, outcomes: Sequence[Outcome]) -> None:
        """Tell MQTT devices about rejects and about the capabilities now in use."""
        if self.bridge is None:
            return
        for o in outcomes:
            if o.outcome == REJECTED:
                self.bridge.send(
                    o.serial, "rejects", {"seq": o.seq, "code": o.code, "detail": o.detail}
                )
            elif o.outcome == ACCEPTED and o.event is not None and o.event.type == "hello":
                runtime = self.platform.catalog.get(o.event.device_class)
                use = agreed_capabilities(runtime, o.event.body.get("capabilities", []))
                self.bridge.send(o.serial, "commands", {"type": "capabilities", "use": use})

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.bridge is not None:
            self.bridge.stop()
        if self.front_door is not None:
            self.front_door.stop()
