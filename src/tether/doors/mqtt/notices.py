"""What the gate tells MQTT devices: reject notices and capability answers.

A gate worker in the same process as the ingest bridge publishes through the
bridge's session; one in a process of its own (``tether worker --gate``) holds a
``NoticeClient``: a clean session on the broker's internal listener under the
bridge's identity, whose ACL allows writing to devices' ``rejects`` and
``commands`` topics.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tether.classes.catalog import ClassCatalog
from tether.contract.codes import ACCEPTED, REJECTED
from tether.doors.mqtt.broker import BRIDGE_CN, BrokerLayout
from tether.errors import EngineError
from tether.gate.pipeline import Outcome
from tether.projections.state import agreed_capabilities

log = logging.getLogger(__name__)
# (serial, channel, message) -> None: publish to tether/v1/{serial}/{channel}.
Send = Callable[[str, str, dict[str, Any]], None]


def notices(
    outcomes: Sequence[Outcome], catalog: ClassCatalog
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The messages devices get for these outcomes: rejects, and answers to hellos."""
    for o in outcomes:
        if o.outcome == REJECTED:
            yield o.serial, "rejects", {"seq": o.seq, "code": o.code, "detail": o.detail}
        elif o.outcome == ACCEPTED and o.event is not None and o.event.type == "hello":
            runtime = catalog.get(o.event.device_class)
            use = agreed_capabilities(runtime, o.event.body.get("capabilities", []))
            yield o.serial, "commands", {"type": "capabilities", "use": use}


def notifier(send: Send, catalog: ClassCatalog) -> Callable[[Sequence[Outcome]], None]:
    """A gate worker's notifier publishing with ``send``."""

    def notify(outcomes: Sequence[Outcome]) -> None:
        for serial, channel, message in notices(outcomes, catalog):
            send(serial, channel, message)

    return notify


def start_session(
    client: mqtt.Client,
    port: int,
    connected: threading.Event,
    timeout: float,
    who: str,
    hint: str = "",
) -> None:
    """Connect ``client`` to the broker's internal listener and wait for its session."""
    try:
        client.connect("127.0.0.1", port)
    except OSError as exc:
        raise EngineError(
            f"{who} cannot reach the broker's internal listener on port {port}: {exc}. {hint}"
        ) from exc
    client.loop_start()
    if not connected.wait(timeout):
        client.disconnect()
        client.loop_stop()
        raise EngineError(f"the broker did not give {who} a session within {timeout:g} s")


def publish(
    client: mqtt.Client, lock: threading.Lock, serial: str, channel: str, message: dict[str, Any]
) -> None:
    """Publish to a device's ``rejects`` or ``commands`` topic (QoS 1)."""
    payload = json.dumps(message, separators=(",", ":"))
    with lock:
        client.publish(f"tether/v1/{serial}/{channel}", payload, qos=1)


class NoticeClient:
    """A publisher of device notices for a gate worker without a bridge beside it."""

    def __init__(self, layout: BrokerLayout, internal_port: int) -> None:
        self.port = internal_port
        self._connected = threading.Event()
        self._lock = threading.Lock()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"tether-notices-{os.getpid()}-{os.urandom(4).hex()}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        cert, key = layout.client(BRIDGE_CN)
        if not cert.is_file():
            raise EngineError(
                f"no broker credentials at {cert}: start `tether serve` (which writes them) "
                "with the same data directory before the gate workers"
            )
        client.tls_set(ca_certs=str(layout.service_ca), certfile=str(cert), keyfile=str(key))
        client.on_connect = lambda *_: self._connected.set()
        client.on_disconnect = lambda *_: self._connected.clear()
        self.client = client

    def start(self, timeout: float = 10.0) -> None:
        start_session(
            self.client,
            self.port,
            self._connected,
            timeout,
            "the gate worker's notice session",
            "Is `tether serve` running its MQTT front door?",
        )

    def send(self, serial: str, channel: str, message: dict[str, Any]) -> None:
        publish(self.client, self._lock, serial, channel, message)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
