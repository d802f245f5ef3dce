"""The ingest bridge: from the broker into the raw stream, at least once.

It holds a persistent QoS 1 session (clean session off) on the broker's internal
listener under tether's bridge identity, subscribed to every device's records
topic and to the classes' legacy topics. Each message is acknowledged only
after it is durable in the raw stream, so a bridge that dies mid-way leaves the
message with the broker, which delivers it again. Reject notices and
capability answers go back to the devices on their own topics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tether.doors.backlog import Backlog
from tether.doors.mqtt.broker import BRIDGE_CN, BrokerLayout
from tether.doors.mqtt.notices import publish, start_session
from tether.errors import TetherError
from tether.gate.submission import MQTT, MQTT_LEGACY, Submission
from tether.settings import MqttSettings
from tether.stream.base import Stream

log = logging.getLogger(__name__)
CLIENT_ID = "tether-bridge"
RECORDS = "tether/v1/+/records"


def route(topic: str, legacy_topics: list[str]) -> tuple[str, str] | None:
    """(serial, door) for a topic the bridge listens to; None for anything else."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[:2] == ["tether", "v1"] and parts[3] == "records":
        return parts[2], MQTT
    for pattern in legacy_topics:
        head, _, tail = pattern.partition("{serial}")
        if topic.startswith(head) and topic.endswith(tail) and len(topic) > len(head) + len(tail):
            serial = topic[len(head) : len(topic) - len(tail)]
            if "/" not in serial:
                return serial, MQTT_LEGACY
    return None


class IngestBridge:
    """A paho client that moves device records from Mosquitto into the raw stream."""

    def __init__(
        self,
        layout: BrokerLayout,
        settings: MqttSettings,
        raw: Stream,
        legacy_topics: list[str],
        clock: Callable[[], float],
        backlog: Backlog | None = None,
    ) -> None:
        self.raw = raw
        # While the stores are too far behind, messages stay with the broker.
        self.backlog = backlog
        self._stopping = threading.Event()
        self.settings = settings
        self.legacy_topics = legacy_topics
        self.clock = clock
        self.received = 0
        self._connected = threading.Event()
        self._lock = threading.Lock()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=CLIENT_ID,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=True,
        )
        cert, key = layout.client(BRIDGE_CN)
        client.tls_set(ca_certs=str(layout.service_ca), certfile=str(cert), keyfile=str(key))
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = lambda *_: self._connected.clear()
        self.client = client

    def _subscriptions(self) -> list[tuple[str, int]]:
        legacy = [(t.replace("{serial}", "+"), 1) for t in self.legacy_topics]
        return [(RECORDS, 1), *legacy]

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.error("the broker refused the ingest bridge: %s", rc)
            return
        client.subscribe(self._subscriptions())
        self._connected.set()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        routed = route(msg.topic, self.legacy_topics)
        if routed is None:  # not a topic we asked for: nothing to keep
            client.ack(msg.mid, msg.qos)
            return
        serial, door = routed
        if self.backlog is not None:
            self.backlog.wait_until_under(self._stopping)
            if self._stopping.is_set():
                return  # not acknowledged: the broker delivers it again next session
        sub = Submission(serial, bytes(msg.payload), door, int(self.clock() * 1000))
        try:
            self.raw.append([sub.entry()])
        except TetherError:
            # Not durable, so not acknowledged: the broker keeps it for the next session.
            log.exception("could not store a record from %s; leaving it with the broker", serial)
            return
        client.ack(msg.mid, msg.qos)
        self.received += 1

    def start(self, timeout: float = 10.0) -> None:
        start_session(
            self.client, self.settings.internal_port, self._connected, timeout, "the ingest bridge"
        )

    def send(self, serial: str, channel: str, message: dict[str, Any]) -> None:
        """Publish to a device's ``rejects`` or ``commands`` topic (QoS 1)."""
        publish(self.client, self._lock, serial, channel, message)

    def stop(self) -> None:
        self._stopping.set()
        self.client.disconnect()
        self.client.loop_stop()
