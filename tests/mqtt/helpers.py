"""Software devices and tether's own clients speaking MQTT to the front door, for tests."""

from __future__ import annotations

import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tether.devices.secure_element import SecureElementStore
from tether.testing import MosquittoInstance

NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87


@dataclass(frozen=True)
class TlsFiles:
    """What a TLS client presents: the CA it trusts, and its certificate and key (or none)."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None


def device_files(
    elements: SecureElementStore, serial: str, broker: MosquittoInstance, directory: Path
) -> TlsFiles:
    """A simulated device's TLS files: its certificate from flash, its key from the element."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / f"{serial}.pem"
    cert.write_text(elements.certificate(serial))
    key = elements.open(serial).export_key_for_tls(directory / f"{serial}.key")
    return TlsFiles(broker.service_ca, cert, key)


class Session:
    """A paho MQTT client (protocol 5 unless told) with events a test can wait on.

    It never reconnects by itself: a dropped connection stays dropped, and
    ``disconnected_at`` says when the drop was seen.
    """

    def __init__(
        self,
        client_id: str,
        tls: TlsFiles,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    ) -> None:
        self.client_id = client_id
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            reconnect_on_failure=False,
        )
        self.client.tls_set(
            ca_certs=str(tls.ca),
            certfile=str(tls.cert) if tls.cert else None,
            keyfile=str(tls.key) if tls.key else None,
        )
        self.connack: ReasonCode | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.disconnected_at: float | None = None
        self.error: str | None = None
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._acks: dict[int, list[ReasonCode]] = {}
        self._acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_ack
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)

    # paho callbacks
    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self.connack = rc
        if not rc.is_failure:
            self.connected.set()
        else:
            self.disconnected.set()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self.disconnected_at = time.monotonic()
        self.disconnected.set()

    def _on_ack(
        self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: Properties | None
    ) -> None:
        with self._acked:
            self._acks[mid] = [rc]
            self._acked.notify_all()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, mid: int, rcs: list[ReasonCode], _p: object
    ) -> None:
        with self._acked:
            self._acks[mid] = list(rcs)
            self._acked.notify_all()

    def _wait_ack(self, mid: int, timeout: float) -> list[ReasonCode]:
        with self._acked:
            if not self._acked.wait_for(lambda: mid in self._acks, timeout):
                raise AssertionError(f"{self.client_id}: no acknowledgement for message {mid}")
            return self._acks.pop(mid)

    # what tests call
    def connect(self, port: int, timeout: float = 5.0) -> bool:
        """Connect; True once the broker sent a successful CONNACK, False if it would not."""
        try:
            self.client.connect("127.0.0.1", port, keepalive=30)
        except (ssl.SSLError, OSError) as exc:
            self.error = repr(exc)
            return False
        self.client.loop_start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected.is_set():
                return True
            if self.disconnected.is_set():
                return False
            time.sleep(0.01)
        return False

    def publish(self, topic: str, payload: bytes, timeout: float = 5.0) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1)
        return self._wait_ack(info.mid, timeout)[0]

    def subscribe(self, topic: str, timeout: float = 5.0) -> ReasonCode:
        """Subscribe at QoS 1 and return the SUBACK's reason code."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        return self._wait_ack(mid, timeout)[0]

    def close(self) -> None:
        if self.connected.is_set() and not self.disconnected.is_set():
            self.client.disconnect()
        self.client.loop_stop()


def tls_verdict(port: int, tls: TlsFiles, wait: float = 0.5) -> str:
    """What the broker's TLS layer says to a client: ``accepted`` or the alert it sent.

    With TLS 1.3 a server judges the client's certificate after the client thinks
    the handshake is done, so the verdict arrives as an alert on the first read.
    """
    context = ssl.create_default_context(cafile=str(tls.ca))
    if tls.cert and tls.key:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            conn.settimeout(wait)
            try:
                data = conn.recv(1)
            except TimeoutError:
                return "accepted"  # the broker is waiting for our CONNECT
    except ssl.SSLError as exc:
        return str(exc.reason)
    return f"closed ({data!r})"
