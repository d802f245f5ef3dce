"""Simulated devices' MQTT connections, all run by one network thread.

Each device holds a paho client with its own certificate and key (mutual TLS to
the Mosquitto tether manages, client id = serial). The hub's thread owns every
client: it connects them, writes and reads their sockets through one selector
(paho's external-loop interface) and keeps them alive. The engine never calls
paho: it asks the hub (``connect``, ``publish``, ``drop``, ``close``) and hears
back through ``engine.post``, so device models stay single-threaded.

``drop`` cuts a connection the way a dead radio does: no DISCONNECT, the socket
just goes. A client with a persistent session (``clean_session=False``) keeps
its unacknowledged QoS 1 messages and sends them again, flagged DUP, when it
reconnects: MQTT's own redelivery.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tether.sim.engine import Engine, Hold

log = logging.getLogger(__name__)
KEEPALIVE_SECONDS = 60


class LinkListener(Protocol):
    """What a device hears about its connection, on the engine's thread."""

    def on_up(self) -> None: ...

    def on_down(self, reason: str) -> None: ...

    def on_connect_failed(self, reason: str) -> None: ...

    def on_ack(self, ticket: int) -> None: ...

    def on_message(self, topic: str, payload: bytes) -> None: ...


@dataclass(frozen=True)
class TlsIdentity:
    cert: Path
    key: Path


class MqttLink:
    """One device's connection. Engine-side state; the paho client lives in the hub."""

    def __init__(
        self,
        hub: MqttHub,
        serial: str,
        tls: TlsIdentity,
        listener: LinkListener,
        subscriptions: list[str],
        clean_session: bool,
    ) -> None:
        self.hub = hub
        self.serial = serial
        self.tls = tls
        self.listener = listener
        self.subscriptions = subscriptions
        self.clean_session = clean_session
        self.up = False
        self.connecting = False
        # Publishes on the live connection not yet acknowledged: ticket -> simulated time.
        self.inflight: dict[int, float] = {}
        # When a connect, drop or close was asked for whose outcome has not come back.
        self.waiting_since: float | None = None
        # hub-thread state
        self._client: mqtt.Client | None = None
        self._mids: dict[int, int] = {}
        self._closing = False

    # engine side
    def connect(self) -> None:
        if self.up or self.connecting:
            return
        self.connecting = True
        self.waiting_since = self.hub.engine.now
        self.hub._busy_now(self)
        self.hub._call(lambda: self.hub._connect(self))

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1; the ticket comes back through ``on_ack``."""
        ticket = next(self.hub._tickets)
        if self.up:
            self.inflight[ticket] = self.hub.engine.now
            self.hub._busy_now(self)
        self.hub._call(lambda: self.hub._publish(self, ticket, topic, payload))
        return ticket

    def drop(self) -> None:
        """Lose the connection as a dead radio does: no DISCONNECT."""
        self.waiting_since = self.hub.engine.now
        self.hub._busy_now(self)
        self.hub._call(lambda: self.hub._drop(self))

    def close(self) -> None:
        """Disconnect cleanly (the broker keeps a persistent session)."""
        self.waiting_since = self.hub.engine.now
        self.hub._busy_now(self)
        self.hub._call(lambda: self.hub._close(self))

    def _went_up(self) -> None:
        self.up, self.connecting, self.waiting_since = True, False, None
        self.hub._recheck(self)
        self.hub._links_up(+1)
        self.listener.on_up()

    def _settled(self) -> None:
        """A drop or close found nothing to end."""
        self.waiting_since = None
        self.hub._recheck(self)

    def _went_down(self, reason: str) -> None:
        was_up = self.up
        self.up, self.connecting, self.waiting_since = False, False, None
        self.inflight.clear()  # not moving now: no longer a reason to hold the clock
        self.hub._recheck(self)
        if was_up:
            self.hub._links_up(-1)
            self.listener.on_down(reason)

    def _failed(self, reason: str) -> None:
        self.up, self.connecting, self.waiting_since = False, False, None
        self.hub._recheck(self)
        self.listener.on_connect_failed(reason)

    def _acked(self, ticket: int) -> None:
        self.inflight.pop(ticket, None)
        self.hub._recheck(self)
        self.listener.on_ack(ticket)


class MqttHub:
    """The network thread of every simulated MQTT device."""

    def __init__(
        self, engine: Engine, host: str, port: int, service_ca: Path, latency: float = 30.0
    ) -> None:
        self.engine = engine
        self.host, self.port = host, port
        self.service_ca = service_ca
        self.latency = latency  # simulated seconds a live link may take to acknowledge
        self.links: list[MqttLink] = []
        # Links the clock may be waiting for (a connect, drop or close unanswered, or a
        # publish unacknowledged), kept as they change so a hold looks at those alone:
        # a fleet of thousands has only a few under way at any instant.
        self._busy: dict[MqttLink, None] = {}
        self._woken = False  # a wake-up byte is on its way to the hub thread
        self.up = 0  # links connected now
        # Told (on the engine's thread) how many links are connected, whenever that changes.
        self.on_links: Callable[[int], None] | None = None
        self._tickets = itertools.count(1)
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-mqtt-hub", daemon=True)
        engine.add_hold(self.hold)

    def link(
        self,
        serial: str,
        tls: TlsIdentity,
        listener: LinkListener,
        subscriptions: list[str],
        clean_session: bool = False,
    ) -> MqttLink:
        made = MqttLink(self, serial, tls, listener, subscriptions, clean_session)
        self.links.append(made)
        return made

    def start(self) -> None:
        self._thread.start()

    def hold(self) -> Hold | None:
        """The clock waits for the broker: the oldest unanswered connect, or publish on a live link.

        A real connection takes real milliseconds; without this, a world running
        as fast as it can would live hours in them.
        """
        oldest: tuple[float, MqttLink, bool] | None = None
        for link in self._busy:
            since = link.waiting_since
            if since is not None and (oldest is None or since < oldest[0]):
                oldest = (since, link, True)
            if link.up and link.inflight:
                first = next(iter(link.inflight.values()))  # published in time order
                if oldest is None or first < oldest[0]:
                    oldest = (first, link, False)
        if oldest is None:
            return None
        since, link, connecting = oldest
        if connecting:
            return since + self.latency, f"the broker to answer {link.serial}'s connection"
        return since + self.latency, f"the broker to acknowledge a record of {link.serial}"

    @property
    def busy(self) -> int:
        """Links the clock may be waiting for now."""
        return len(self._busy)

    def _links_up(self, change: int) -> None:
        self.up += change
        if self.on_links is not None:
            self.on_links(self.up)

    def _busy_now(self, link: MqttLink) -> None:
        self._busy[link] = None

    def _recheck(self, link: MqttLink) -> None:
        if link.waiting_since is None and not (link.up and link.inflight):
            self._busy.pop(link, None)

    def _open_sockets(self) -> list[Any]:
        return [
            sock
            for link in self.links
            if link._client is not None and (sock := link._client.socket()) is not None
        ]

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection (cleanly, if it can in ``timeout``) and end the thread."""
        if self._thread.is_alive():
            for link in self.links:
                link.close()
            deadline = time.monotonic() + timeout
            while self._open_sockets() and time.monotonic() < deadline:
                time.sleep(0.02)
            self._stop.set()
            self._wake()
            self._thread.join(timeout)
        for sock in self._open_sockets():  # whatever did not say goodbye in time
            with contextlib.suppress(OSError):
                sock.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # the hub thread
    def _call(self, command: Callable[[], None]) -> None:
        self._commands.put(command)
        self._wake()

    def _wake(self) -> None:
        # One byte wakes the hub however many commands follow it before it reads them:
        # a cart publishing a record must not cost a system call each.
        if self._woken:
            return
        self._woken = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        next_misc = time.monotonic() + 1.0
        while not self._stop.is_set():
            for key, mask in self._selector.select(timeout=0.5):
                link: MqttLink | None = key.data
                if link is None:
                    self._drain_wake()
                    continue
                client = link._client
                if client is None:
                    continue
                try:
                    if mask & selectors.EVENT_READ:
                        self._read(client)
                    if mask & selectors.EVENT_WRITE and client.socket() is not None:
                        client.loop_write()
                except Exception:  # one device's socket must not stop the others
                    log.exception("simulated device %s: network error", link.serial)
            # After reading the wake-up bytes, before taking the commands: a command queued
            # from here on either is taken now or sends a byte of its own.
            self._woken = False
            self._run_commands()
            if time.monotonic() >= next_misc:
                for link in self.links:
                    if link._client is not None and link._client.socket() is not None:
                        link._client.loop_misc()
                next_misc = time.monotonic() + 1.0

    @staticmethod
    def _read(client: mqtt.Client) -> None:
        """Read what the broker sent, to the end of what TLS has already decrypted.

        A TLS socket can hold decrypted bytes the selector does not see (several
        acknowledgements in one record): read them now, or they would wait for the
        next packet or the selector's timeout, holding the clock half a second.
        """
        client.loop_read()
        for _ in range(10_000):
            sock = client.socket()
            pending = getattr(sock, "pending", None)
            if pending is None or not pending():
                return
            client.loop_read()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command()
            except Exception:
                log.exception("simulated MQTT command failed")

    def _client_for(self, link: MqttLink) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=link.serial,
            protocol=mqtt.MQTTv311,
            clean_session=link.clean_session,
            reconnect_on_failure=False,
        )
        client.tls_set(
            ca_certs=str(self.service_ca), certfile=str(link.tls.cert), keyfile=str(link.tls.key)
        )
        client.max_inflight_messages_set(50)
        client.max_queued_messages_set(0)

        def opened(_c: Any, _u: Any, sock: Any) -> None:
            # A device's small packets go at once: with Nagle's algorithm a publish can wait
            # for the delayed acknowledgement of the last one, tens of milliseconds held.
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._selector.register(sock, selectors.EVENT_READ, link)

        def closed(_c: Any, _u: Any, sock: Any) -> None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)

        def want_write(_c: Any, _u: Any, sock: Any) -> None:
            self._selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, link)

        def written(_c: Any, _u: Any, sock: Any) -> None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.modify(sock, selectors.EVENT_READ, link)

        def connected(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if rc.is_failure:
                self.engine.post(lambda: link._failed(f"the broker refused: {rc}"))
                return
            for topic in link.subscriptions:
                client.subscribe(topic, qos=1)
            self.engine.post(link._went_up)

        def disconnected(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            reason = "closed" if link._closing else f"lost ({rc})"
            self.engine.post(lambda: link._went_down(reason))

        def acked(_c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
            ticket = link._mids.pop(mid, None)
            if ticket is not None:
                self.engine.post(lambda: link._acked(ticket))

        def message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            topic, payload = msg.topic, bytes(msg.payload)
            self.engine.post(lambda: link.listener.on_message(topic, payload))

        client.on_socket_open = opened
        client.on_socket_close = closed
        client.on_socket_register_write = want_write
        client.on_socket_unregister_write = written
        client.on_connect = connected
        client.on_disconnect = disconnected
        client.on_publish = acked
        client.on_message = message
        return client

    def _connect(self, link: MqttLink) -> None:
        link._closing = False
        try:
            if link._client is None:
                link._client = self._client_for(link)
                link._client.connect(self.host, self.port, keepalive=KEEPALIVE_SECONDS)
            else:
                link._client.reconnect()
        except (OSError, ssl.SSLError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.engine.post(lambda: link._failed(reason))

    def _publish(self, link: MqttLink, ticket: int, topic: str, payload: bytes) -> None:
        if link._client is None:
            return
        info = link._client.publish(topic, payload, qos=1)
        link._mids[info.mid] = ticket

    def _drop(self, link: MqttLink) -> None:
        client = link._client
        sock = client.socket() if client is not None else None
        if sock is None:
            self.engine.post(link._settled)
            return
        with contextlib.suppress(OSError, AttributeError):
            sock.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]  # the radio is gone: no DISCONNECT, no TLS goodbye

    def _close(self, link: MqttLink) -> None:
        if link._client is not None and link._client.socket() is not None:
            link._closing = True
            link._client.disconnect()
        else:
            self.engine.post(link._settled)
