from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.identity.conftest import Clock, open_platform
from tether.errors import CertificateRejectedError
from tether.platform import Platform
from tether.registry.base import DeviceRegistry


def _provision(p: Platform, n: int = 1, tenant: str = "acme") -> list[x509.Certificate]:
    made = p.provisioner.provision(p.secure_elements, tenant, "oral-care-brush", "B", n)
    return [
        x509.load_pem_x509_certificate(p.secure_elements.certificate(d.serial).encode())
        for d in made
    ]


def _code(verify: object, *args: object) -> str:
    with pytest.raises(CertificateRejectedError) as err:
        verify(*args)  # type: ignore[operator]
    return err.value.code


class CountingRegistry:
    """Wraps a registry and counts device look-ups."""

    def __init__(self, inner: DeviceRegistry) -> None:
        self.inner = inner
        self.lookups = 0

    def find_device(self, serial: str) -> object:
        self.lookups += 1
        return self.inner.find_device(serial)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_known_devices_verify_from_the_cache(platform: Platform, clock: Clock) -> None:
    from tether.identity.verifier import CertificateVerifier

    certs = _provision(platform, 5)
    counting = CountingRegistry(platform.registry)
    verifier = CertificateVerifier(counting, clock, poll_seconds=3600)  # type: ignore[arg-type]
    for cert in certs:
        verifier.verify(cert)
    assert counting.lookups == 5
    for _ in range(3):
        for cert in certs:
            assert verifier.verify(cert).tenant == "acme"
    assert counting.lookups == 5 and verifier.cached() == 5


def test_revocation_is_immediate_in_process(platform: Platform) -> None:
    cert = _provision(platform)[0]
    device = platform.verifier.verify(cert)
    platform.revoke(device.serial, "stolen")
    assert _code(platform.verifier.verify, cert) == "cert_revoked"


def test_revocation_by_another_process_is_seen_within_the_poll(
    tmp_path: Path, clock: Clock
) -> None:
    serve = open_platform(tmp_path / "t", clock, identity={"revocation_poll_seconds": 0.2})
    serve.authority.init_tenant("acme")
    cert = _provision(serve)[0]
    device = serve.verifier.verify(cert)
    operator = open_platform(tmp_path / "t", clock)
    operator.revoke(device.serial, "stolen")
    import time

    time.sleep(0.3)
    assert _code(serve.verifier.verify, cert) == "cert_revoked"
    serve.close()
    operator.close()


def test_validity_window_is_checked_on_every_hit(platform: Platform, clock: Clock) -> None:
    cert = _provision(platform)[0]
    platform.verifier.verify(cert)
    clock.advance(platform.settings.identity.device_cert_days * 86400 + 1)
    assert _code(platform.verifier.verify, cert) == "cert_expired"


def test_foreign_and_malformed_certificates(
    platform: Platform, tmp_path: Path, clock: Clock
) -> None:
    other = open_platform(tmp_path / "other", clock)
    other.authority.init_tenant("acme")
    assert _code(platform.verifier.verify, _provision(other)[0]) == "untrusted_cert"
    assert _code(platform.verifier.verify, b"not a certificate") == "untrusted_cert"
    other.close()


def test_self_signed_lookalike_is_untrusted(platform: Platform) -> None:
    ca = platform.authority.issuing_ca("acme")
    key = ec.generate_private_key(ec.SECP256R1())
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    fake = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FAKE-1")]))
        .issuer_name(ca.cert.subject)  # claims the real issuer's name
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    assert _code(platform.verifier.verify, fake) == "untrusted_cert"


def test_tenant_boundary(platform: Platform) -> None:
    platform.authority.init_tenant("globex")
    cert = _provision(platform, tenant="globex")[0]
    assert platform.verifier.verify(cert, tenant="globex").tenant == "globex"
    assert _code(platform.verifier.verify, cert, "acme") == "untrusted_cert"


def test_just_in_time_registration(platform: Platform) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert, _ca = platform.authority.issue_device_certificate(
        "acme", "JIT-0001", "power-tool", key.public_key()
    )
    assert _code(platform.verifier.verify, cert) == "unknown_device"
    platform.registry.set_jit("acme", True)
    platform.verifier._refresh(force=True)
    device = platform.verifier.verify(cert)
    assert device.serial == "JIT-0001" and device.device_class == "power-tool"
    entry = platform.registry.get_device("JIT-0001")
    assert entry.source == "jit" and entry.status == "active"
