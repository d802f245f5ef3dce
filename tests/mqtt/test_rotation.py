"""CA rotation at the MQTT front door: the new manufacturing CA is trusted once the door
enforces the change, the old one through its overlap window and not after it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509

from tests.mqtt.conftest import TENANT
from tests.mqtt.helpers import Session, TlsFiles, tls_verdict
from tether.platform import Platform
from tether.registry.base import CA_RETIRED, CA_RETIRING
from tether.testing import MosquittoInstance


@pytest.fixture(scope="module")
def mosquitto(platform: Platform) -> Iterator[MosquittoInstance]:
    """Without the watcher, so the test decides when the door enforces."""
    with MosquittoInstance(platform, watch=False) as broker:
        yield broker


def issuer(platform: Platform, serial: str) -> x509.Name:
    pem = platform.secure_elements.certificate(serial).encode()
    return x509.load_pem_x509_certificate(pem).issuer


def test_rotation_trusts_the_new_ca_after_enforce_and_the_old_one_until_its_window_ends(
    platform: Platform,
    mosquitto: MosquittoInstance,
    provision: Callable[[int], list[str]],
    tls_files: Callable[[str], TlsFiles],
    sessions: Callable[[str, TlsFiles], Session],
) -> None:
    door = mosquitto.door
    assert door is not None
    [old_device] = provision(1)
    old_ca = platform.authority.issuing_ca(TENANT)
    assert tls_verdict(mosquitto.port, tls_files(old_device)) == "accepted"

    new_ca = platform.authority.rotate(TENANT, overlap_days=30)
    [new_device] = provision(1)
    assert issuer(platform, new_device) == new_ca.cert.subject != old_ca.cert.subject
    # The broker does not know the new CA until the door applies the change.
    assert tls_verdict(mosquitto.port, tls_files(new_device)) == "TLSV1_ALERT_UNKNOWN_CA"

    assert door.enforce() == []
    assert tls_verdict(mosquitto.port, tls_files(new_device)) == "accepted"
    device = sessions(new_device, tls_files(new_device))
    assert device.connect(mosquitto.port), device.error
    assert not device.publish(f"tether/v1/{new_device}/records", b'{"seq": 1}').is_failure
    # The old CA stays trusted through the overlap window.
    assert tls_verdict(mosquitto.port, tls_files(old_device)) == "accepted"

    # The window ends: the old CA is retired on the next pass and its devices refused.
    platform.registry.update_ca(old_ca.id, CA_RETIRING, time.time() - 1)
    door.enforce()
    assert [ca.status for ca in platform.registry.list_cas(TENANT, "manufacturing")] == [
        CA_RETIRED,
        "active",
    ]
    assert tls_verdict(mosquitto.port, tls_files(old_device)) == "TLSV1_ALERT_UNKNOWN_CA"
    assert tls_verdict(mosquitto.port, tls_files(new_device)) == "accepted"


def test_the_old_ca_is_refused_once_its_window_ends_with_no_other_change(
    platform: Platform,
    mosquitto: MosquittoInstance,
    provision: Callable[[int], list[str]],
    tls_files: Callable[[str], TlsFiles],
) -> None:
    door = mosquitto.door
    assert door is not None
    [old_device] = provision(1)
    window = 2.0
    platform.authority.rotate(TENANT, overlap_days=window / 86400)
    [new_device] = provision(1)
    door.enforce()
    ends = time.monotonic() + window
    assert tls_verdict(mosquitto.port, tls_files(new_device)) == "accepted"

    time.sleep(max(0.0, ends - time.monotonic()) + 0.1)
    generation = platform.registry.generation()
    door.enforce()  # nothing changed in the registry; the window's end alone is due
    assert platform.registry.generation() > generation  # the pass retired the old CA
    assert tls_verdict(mosquitto.port, tls_files(old_device)) == "TLSV1_ALERT_UNKNOWN_CA"
    assert tls_verdict(mosquitto.port, tls_files(new_device)) == "accepted"
