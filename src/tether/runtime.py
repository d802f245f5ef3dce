"""What ``tether serve`` runs beside its HTTP servers, and what ``tether worker`` runs.

The MQTT front door (Mosquitto and its revocation enforcer), and the roles: the
ingest bridge (``bridge``), the gate worker that judges MQTT records (``gate``),
the projector that fills the telemetry store and device state (``projector``,
which also runs the rollout tracker and monitor),
the reject log (``rejects``) and the raw stream's retention (``retention``).
``tether serve`` runs the roles named in ``workers.in_serve`` (all by default);
on production engines the others run in ``tether worker`` processes, any number
of them for ``gate``. Each loop runs in its own thread and survives its own
failures: a failed pass is logged and retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tether.doors.mqtt.bridge import IngestBridge
from tether.doors.mqtt.broker import BrokerLayout, legacy_topics
from tether.doors.mqtt.frontdoor import MqttFrontDoor
from tether.doors.mqtt.notices import NoticeClient, Send, notifier
from tether.gate.pipeline import Outcome
from tether.gate.worker import GateWorker
from tether.platform import Platform
from tether.rollouts.delivery import Delivery
from tether.settings import ROLES

log = logging.getLogger(__name__)


class Runtime:
    """The front door (``mqtt``) and the roles of one process, each in its own thread.

    ``mqtt`` says whether the MQTT door is in use at all: when it is off, no role
    speaks MQTT (no bridge, no notices). ``front_door`` runs Mosquitto here.
    """

    def __init__(
        self,
        platform: Platform,
        mqtt: bool = True,
        idle_seconds: float = 0.05,
        roles: Iterable[str] = ROLES,
        front_door: bool = True,
    ) -> None:
        self.platform = platform
        self.mqtt = mqtt
        self.idle_seconds = idle_seconds
        self.roles = frozenset(roles)
        unknown = self.roles - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; known: {', '.join(ROLES)}")
        self.run_front_door = front_door and mqtt
        self.front_door: MqttFrontDoor | None = None
        self.bridge: IngestBridge | None = None
        self.notices: NoticeClient | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._trimmed_at = float("-inf")

    def start(self) -> None:
        p = self.platform
        layout = BrokerLayout(Path(p.settings.data_dir) / "broker")
        try:
            if self.run_front_door:
                self.front_door = MqttFrontDoor(p, layout)
                self.front_door.start()
            if self.mqtt and "bridge" in self.roles:
                self.bridge = IngestBridge(
                    layout,
                    p.settings.mqtt,
                    p.stream("raw"),
                    legacy_topics(p.settings.mqtt, p.catalog),
                    p.clock,
                    p.backlog,
                )
                self.bridge.start()
            if "gate" in self.roles:
                worker = GateWorker(
                    p.gate_group, p.gate, self._notifier(layout), p.settings.ingest.batch
                )
                self._loop("gate-worker", worker.run_once)
        except BaseException:
            self.stop()
            raise
        if "projector" in self.roles:
            self._loop("projector", p.projector.run_once)
            # Rollouts follow the same accepted events: update states, then the halt rules;
            # devices the monitor notifies get their jobs.
            delivery = Delivery(p, self._lazy_send(layout))
            p.rollout_monitor.on_notify = delivery
            p.rollout_monitor.on_return = delivery.send_back
            self._loop("rollout-tracker", p.rollout_tracker.run_once)
            self._loop("rollout-monitor", p.rollout_monitor.run_once)
        if "rejects" in self.roles:
            self._loop("rejects", p.rejects.run_once)
        if "retention" in self.roles:
            self._loop("retention", self._retention)

    def _notifier(self, layout: BrokerLayout) -> Callable[[Sequence[Outcome]], None] | None:
        """How the gate tells devices: through the bridge, a notice session, or not at all."""
        send = self._send(layout)
        return None if send is None else notifier(send, self.platform.catalog)

    def _send(self, layout: BrokerLayout) -> Send | None:
        """Publishing to devices' topics: the bridge's session, a notice session, or none."""
        if not self.mqtt:
            return None
        if self.bridge is not None:
            return self.bridge.send
        if self.notices is None:
            self.notices = NoticeClient(layout, self.platform.settings.mqtt.internal_port)
            self.notices.start()
        return self.notices.send

    def _lazy_send(self, layout: BrokerLayout) -> Send | None:
        """As ``_send``, opening a notice session only when the first message goes out."""
        if not self.mqtt:
            return None

        def send(serial: str, channel: str, message: dict[str, Any]) -> None:
            publish = self._send(layout)
            assert publish is not None
            publish(serial, channel, message)

        return send

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

    def _retention(self) -> int:
        """Once an hour: drop raw records and stored events past their retention."""
        now = time.monotonic()
        if now - self._trimmed_at < 3600:
            return 0
        self._trimmed_at = now
        settings = self.platform.settings
        cutoff = self.platform.clock() - settings.raw_retention_days * 86400
        removed = self.platform.stream("raw").trim(cutoff)
        if removed:
            log.info("dropped %d raw records older than the retention window", removed)
        if settings.telemetry_retention_days is not None:
            cutoff = self.platform.clock() - settings.telemetry_retention_days * 86400
            removed = self.platform.telemetry.delete_before(int(cutoff * 1000))
            if removed:
                log.info("dropped %d stored events older than the retention window", removed)
        return 0

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.notices is not None:
            self.notices.stop()
        if self.bridge is not None:
            self.bridge.stop()
        if self.front_door is not None:
            self.front_door.stop()
