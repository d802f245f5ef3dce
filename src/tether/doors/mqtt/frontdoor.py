"""The MQTT front door at run time: the broker plus the revocation enforcer.

The enforcer watches the registry's generation counter. When trust changes (a
revocation, a renewal, a CA rotation or a new tenant) it rewrites the broker's
CA and CRL files and sends SIGHUP, so the next handshake is judged by the new
lists; and for each newly revoked device it takes over the device's client id
from the internal listener and disconnects, which closes the live connection.
The poll interval (``identity.revocation_poll_seconds``, at most 60 s) bounds
how long a revoked device keeps its connection.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tether.doors.mqtt.broker import (
    CONTROL_CN,
    Broker,
    BrokerLayout,
    write_broker_files,
    write_trust_files,
)
from tether.errors import EngineError
from tether.platform import Platform

log = logging.getLogger(__name__)

# Revocation lists are signed for a day (Authority.crl). The door rewrites them well
# before then even when nothing changed, or once they lapsed every device would be refused.
CRL_REFRESH_SECONDS = 6 * 3600
# The control client's id when it only checks that the broker has reloaded; ':' keeps
# it apart from every device serial.
SYNC_CLIENT_ID = "tether:sync"


class MqttFrontDoor:
    """Runs Mosquitto with tether's configuration and keeps its trust current."""

    def __init__(self, platform: Platform, layout: BrokerLayout | None = None) -> None:
        self.platform = platform
        self.settings = platform.settings.mqtt
        self.layout = layout or BrokerLayout(Path(platform.settings.data_dir) / "broker")
        self.broker = Broker(self.layout, self.settings)
        self._generation = -1
        self._revoked: set[str] = set()
        self._rewrite_due = 0.0
        # enforce() runs in the watcher thread and may be called directly too.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, watch: bool = True) -> None:
        # Read what the files will cover before writing them: a change made meanwhile is
        # then applied (again) by the next pass instead of being missed.
        self._generation = self.platform.registry.generation()
        self._revoked = self.platform.registry.revoked_serials()
        write_broker_files(
            self.layout, self.platform.authority, self.settings, self.platform.catalog
        )
        # The lists are dated by the authority's clock; their refresh follows the same one.
        self._rewrite_due = self._next_rewrite(self.platform.authority.clock())
        self.broker.start()
        if watch:
            self._thread = threading.Thread(target=self._watch, name="mqtt-revocation", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        interval = self.platform.settings.identity.revocation_poll_seconds
        while not self._stop.wait(interval):
            try:
                self.enforce()
            except Exception:  # keep watching; the next pass retries
                log.exception("revocation enforcement failed; retrying")

    def enforce(self) -> list[str]:
        """One pass: apply trust changes made since the last pass; return kicked serials.

        Also rewrites the files when time alone calls for it: before the revocation
        lists lapse, and when a retiring CA's overlap window ends.
        """
        with self._lock:
            generation = self.platform.registry.generation()
            now = self.platform.authority.clock()
            if generation == self._generation and now < self._rewrite_due:
                return []
            self.platform.authority.retire_expired()
            write_trust_files(self.layout, self.platform.authority)
            self._rewrite_due = self._next_rewrite(now)
            self.broker.reload()
            # Mosquitto applies a SIGHUP at the end of its next loop pass, so a handshake
            # begun right after the signal may still be judged by the old lists. A whole
            # connection round trip spans that pass: after it, every handshake uses the
            # new lists (and a kicked device cannot slip back in under the old ones).
            self._control_session(SYNC_CLIENT_ID)
            revoked = self.platform.registry.revoked_serials()
            fresh = sorted(revoked - self._revoked)
            for serial in fresh:
                self.kick(serial)
            self._revoked = revoked
            self._generation = generation
            return fresh

    def _next_rewrite(self, now: float) -> float:
        due = now + CRL_REFRESH_SECONDS
        for ca in self.platform.authority.trusted_manufacturing():
            if ca.trusted_until is not None:
                due = min(due, ca.trusted_until)
        return due

    def kick(self, serial: str, timeout: float = 5.0) -> None:
        """Close whatever connection holds client id ``serial`` (session takeover)."""
        self._control_session(serial, timeout)
        log.info("dropped the MQTT connection of revoked device %s", serial)

    def _control_session(self, client_id: str, timeout: float = 5.0) -> None:
        """Connect the control client as ``client_id``, wait for the CONNACK, disconnect."""
        connected = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        cert, key = self.layout.client(CONTROL_CN)
        client.tls_set(ca_certs=str(self.layout.service_ca), certfile=str(cert), keyfile=str(key))
        client.on_connect = lambda *_args: connected.set()
        try:
            client.connect("127.0.0.1", self.settings.internal_port)
            client.loop_start()
            if not connected.wait(timeout):
                raise EngineError(
                    f"the broker did not accept the control client as {client_id!r} "
                    f"(log: {self.broker.log_path})"
                )
            client.disconnect()
        except OSError as exc:
            raise EngineError(f"cannot reach the broker's internal listener: {exc}") from exc
        finally:
            client.loop_stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.broker.stop()
