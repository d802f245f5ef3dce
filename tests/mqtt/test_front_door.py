"""The MQTT front door against a real Mosquitto: mutual TLS, per-device ACLs, revocation.

Contract section 1 (identity, revocation within 60 s) and section 6 (topics, reason 135).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.mqtt.conftest import TENANT, open_platform
from tests.mqtt.helpers import NOT_AUTHORIZED, Session, TlsFiles, device_files, tls_verdict
from tether.doors.mqtt.broker import BRIDGE_CN
from tether.identity.ca import Authority, to_pem
from tether.identity.provisioning import device_entry
from tether.platform import Platform
from tether.settings import IdentitySettings
from tether.testing import MosquittoInstance

Sessions = Callable[[str, TlsFiles], Session]


def records(serial: str) -> str:
    return f"tether/v1/{serial}/records"


def commands(serial: str) -> str:
    return f"tether/v1/{serial}/commands"


@pytest.fixture
def bridge(mosquitto: MosquittoInstance, sessions: Sessions) -> Session:
    """tether's ingest bridge identity on the internal listener."""
    cert, key = mosquitto.client_files(BRIDGE_CN)
    session = sessions(
        f"test-bridge-{time.monotonic_ns()}", TlsFiles(mosquitto.service_ca, cert, key)
    )
    assert session.connect(mosquitto.internal_port), session.error
    return session


def drain(messages: queue.Queue[mqtt.MQTTMessage], wait: float) -> list[mqtt.MQTTMessage]:
    """Everything that arrives within ``wait`` seconds."""
    got = []
    deadline = time.monotonic() + wait
    while True:
        try:
            got.append(messages.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            return got


# connecting and publishing ----------------------------------------------------------------


def test_a_provisioned_device_connects_over_mutual_tls_and_publishes_its_records(
    mosquitto: MosquittoInstance,
    provision: Callable[[int], list[str]],
    tls_files: Callable[[str], TlsFiles],
    sessions: Sessions,
    bridge: Session,
) -> None:
    [serial] = provision(1)
    assert tls_verdict(mosquitto.port, tls_files(serial)) == "accepted"
    assert str(bridge.subscribe(records("+"))) == "Granted QoS 1"

    device = sessions(serial, tls_files(serial))
    assert device.connect(mosquitto.port), device.error
    assert device.publish(records(serial), b'{"seq": 1}').value == 0

    [message] = drain(bridge.messages, 1.0)
    assert message.topic == records(serial)
    assert message.payload == b'{"seq": 1}'
    # The broker took the device's identity from its certificate's CN.
    assert f"as {serial} (p5, c1, k30, u'{serial}')" in mosquitto.log()


@pytest.mark.parametrize(
    "topic",
    [
        "records of another device",
        "legacy topic of another device",
        "its own commands",
        "its own rejects",
        "anywhere else",
    ],
)
def test_a_publish_outside_its_own_topics_gets_reason_135(
    topic: str,
    mosquitto: MosquittoInstance,
    provision: Callable[[int], list[str]],
    tls_files: Callable[[str], TlsFiles],
    sessions: Sessions,
    bridge: Session,
) -> None:
    serial, other = provision(2)
    target = {
        "records of another device": records(other),
        "legacy topic of another device": f"telemetry/{other}",
        "its own commands": commands(serial),
        "its own rejects": f"tether/v1/{serial}/rejects",
        "anywhere else": "tether/v1/broadcast",
    }[topic]
    bridge.subscribe("#")
    device = sessions(serial, tls_files(serial))
    assert device.connect(mosquitto.port), device.error

    assert device.publish(target, b'{"seq": 2}').value == NOT_AUTHORIZED
    # Its own topics still work on the same connection, and nothing else got through.
    assert not device.publish(f"telemetry/{serial}", b'{"event_id": "e1"}').is_failure
    topics = [m.topic for m in drain(bridge.messages, 0.5)]
    assert topics == [f"telemetry/{serial}"]


def test_a_device_cannot_subscribe_to_another_devices_commands(
    mosquitto: MosquittoInstance,
    provision: Callable[[int], list[str]],
    tls_files: Callable[[str], TlsFiles],
    sessions: Sessions,
    bridge: Session,
) -> None:
    serial, other = provision(2)
    device = sessions(serial, tls_files(serial))
    assert device.connect(mosquitto.port), device.error
    own = device.subscribe(commands(serial))
    assert str(own) == "Granted QoS 1"
    # Mosquitto grants these subscriptions and applies the ACL to each message it would
    # deliver: nothing published on another device's topic may reach this one.
    device.subscribe(commands(other))
    device.subscribe("tether/v1/+/commands")

    assert not bridge.publish(commands(other), b"for the other device").is_failure
    assert not bridge.publish(commands(serial), b"for this device").is_failure
    got = {(m.topic, m.payload) for m in drain(device.messages, 1.0)}
    # (Its own command may arrive twice: through both matching subscriptions.)
    assert got == {(commands(serial), b"for this device")}


# who may not connect ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def foreign_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str]]:
    """A device of another tether installation's tenant (with the same tenant name)."""
    other = open_platform(tmp_path_factory.mktemp("foreign") / "tether")
    other.authority.init_tenant(TENANT)
    [device] = other.provisioner.provision(other.secure_elements, TENANT, "retail-cart", "A", 1)
    yield other, device.serial
    other.close()


def expired_device(platform: Platform) -> str:
    """A registered device whose certificate, issued three days ago for one day, has expired."""
    past = time.time() - 3 * 86400
    authority = Authority(
        platform.registry, platform.custody, IdentitySettings(device_cert_days=1), lambda: past
    )
    serial = f"EXPIRED-{time.monotonic_ns()}"
    [element] = platform.secure_elements.manufacture([serial])
    cert, ca = authority.issue_device_certificate(
        TENANT, serial, "retail-cart", element.public_key()
    )
    assert cert.not_valid_after_utc.timestamp() < time.time() - 86400
    platform.registry.add_devices(
        [device_entry(cert, ca, TENANT, "retail-cart", "A", "provisioned", past)]
    )
    platform.secure_elements.store_certificates([(serial, to_pem(cert))])
    return serial


@pytest.mark.parametrize(
    ("case", "alert"),
    [
        ("no certificate", "TLSV13_ALERT_CERTIFICATE_REQUIRED"),
        ("foreign CA", "TLSV1_ALERT_UNKNOWN_CA"),
        ("expired certificate", "SSLV3_ALERT_CERTIFICATE_EXPIRED"),
        ("tether's own service certificate", "TLSV1_ALERT_UNKNOWN_CA"),
    ],
)
def test_a_client_without_a_valid_device_certificate_cannot_connect(
    case: str,
    alert: str,
    platform: Platform,
    mosquitto: MosquittoInstance,
    foreign_device: tuple[Platform, str],
    tls_files: Callable[[str], TlsFiles],
    sessions: Sessions,
    tmp_path: Path,
) -> None:
    if case == "no certificate":
        client_id, tls = "no-cert", TlsFiles(mosquitto.service_ca)
    elif case == "foreign CA":
        other, client_id = foreign_device
        tls = device_files(other.secure_elements, client_id, mosquitto, tmp_path / "foreign")
    elif case == "expired certificate":
        client_id = expired_device(platform)
        tls = tls_files(client_id)
    else:
        client_id = "tether-bridge"
        tls = TlsFiles(mosquitto.service_ca, *mosquitto.client_files(BRIDGE_CN))

    assert tls_verdict(mosquitto.port, tls) == alert
    client = sessions(client_id, tls)
    assert not client.connect(mosquitto.port, timeout=3)
    assert client.connack is None or client.connack.is_failure


# revocation -------------------------------------------------------------------------------


def test_a_revoked_devices_live_connection_is_dropped_and_its_reconnect_refused(
    platform: Platform,
    mosquitto: MosquittoInstance,
    provision: Callable[[int], list[str]],
    tls_files: Callable[[str], TlsFiles],
    sessions: Sessions,
) -> None:
    assert platform.settings.identity.revocation_poll_seconds == 1
    assert mosquitto.watch
    serial, bystander = provision(2)
    device = sessions(serial, tls_files(serial))
    neighbour = sessions(bystander, tls_files(bystander))
    assert device.connect(mosquitto.port), device.error
    assert neighbour.connect(mosquitto.port), neighbour.error

    revoked_at = time.monotonic()
    platform.revoke(serial, "key compromise suspected")
    # The contract allows 60 s; with a 1 s poll the watcher should need a few.
    assert device.disconnected.wait(60), "the revoked device is still connected after 60 s"
    assert device.disconnected_at is not None
    dropped_after = device.disconnected_at - revoked_at
    assert dropped_after < 5, f"dropped after {dropped_after:.1f} s"

    again = sessions(serial, tls_files(serial))
    assert not again.connect(mosquitto.port, timeout=3)
    assert tls_verdict(mosquitto.port, tls_files(serial)) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
    refused_after = time.monotonic() - revoked_at
    assert refused_after < 15, f"refused only after {refused_after:.1f} s"

    # Only the revoked device was dropped.
    assert not neighbour.disconnected.is_set()
    assert not neighbour.publish(records(bystander), b'{"seq": 3}').is_failure


# keeping trust current --------------------------------------------------------------------


class Clock:
    """A clock the test sets by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.engine("mosquitto")
def test_the_door_renews_its_revocation_lists_before_they_lapse(tmp_path: Path) -> None:
    # A door whose CRLs were last written two days ago: they lapsed a day ago.
    clock = Clock(time.time() - 2 * 86400)
    settings = open_platform(tmp_path / "tether").settings
    platform = Platform.open(settings, clock=clock)
    try:
        platform.authority.init_tenant(TENANT)
        [device] = platform.provisioner.provision(
            platform.secure_elements, TENANT, "retail-cart", "A", 1
        )
        with MosquittoInstance(platform, watch=False) as broker:
            tls = device_files(platform.secure_elements, device.serial, broker, tmp_path / "d")
            assert tls_verdict(broker.port, tls) != "accepted"  # an expired CRL fails closed
            clock.now = time.time()
            assert broker.door is not None
            broker.door.enforce()  # no trust change, but the lists are due
            deadline = time.monotonic() + 5
            while tls_verdict(broker.port, tls) != "accepted":
                assert time.monotonic() < deadline, broker.log()
    finally:
        platform.close()
