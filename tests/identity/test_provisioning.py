from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.identity.conftest import Clock
from tether.devices.secure_element import SecureElement
from tether.errors import CertificateRejectedError, ConflictError, CSRRejectedError, IdentityError
from tether.identity.ca import fingerprint
from tether.platform import Platform


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def test_provision_registers_every_device_with_its_own_key(platform: Platform) -> None:
    made = platform.provisioner.provision(
        platform.secure_elements, "acme", "retail-cart", "3", 25, batch=10
    )
    assert len({d.serial for d in made}) == 25
    assert platform.registry.count_devices("acme") == 25
    keys = set()
    for d in made:
        entry = platform.registry.get_device(d.serial)
        assert (entry.tenant, entry.device_class, entry.hw, entry.status, entry.source) == (
            "acme",
            "retail-cart",
            "3",
            "active",
            "provisioned",
        )
        cert = x509.load_pem_x509_certificate(
            platform.secure_elements.certificate(d.serial).encode()
        )
        assert fingerprint(cert) == entry.fingerprint
        element = platform.secure_elements.open(d.serial)
        assert element.public_key() == cert.public_key()
        keys.add(
            element.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
            )
        )
    assert len(keys) == 25


def test_secure_element_signs_and_exposes_no_private_key(platform: Platform) -> None:
    made = platform.provisioner.provision(platform.secure_elements, "acme", "power-tool", "A", 1)
    element = platform.secure_elements.open(made[0].serial)
    payload = b'{"device":"x","seq":1}'
    raw = element.sign(payload)
    assert len(raw) == 64
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    element.public_key().verify(der, payload, ec.ECDSA(hashes.SHA256()))
    public_api = {n for n in dir(SecureElement) if not n.startswith("_")}
    assert public_api <= {
        "serial",
        "public_key",
        "sign",
        "sign_digest",
        "make_csr",
        "export_key_for_tls",
    }


def test_bad_provision_arguments(platform: Platform) -> None:
    with pytest.raises(IdentityError, match="device class"):
        platform.provisioner.provision(platform.secure_elements, "acme", "Bad Class", "A", 1)
    with pytest.raises(IdentityError, match="count"):
        platform.provisioner.provision(platform.secure_elements, "acme", "tool", "A", 0)
    with pytest.raises(IdentityError, match="hardware revision"):
        platform.provisioner.provision(platform.secure_elements, "acme", "tool", "A B", 1)


def test_enroll_checks_the_csr(platform: Platform) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = platform.provisioner.enroll(_csr(key, "FACTORY-0001"), "acme", "power-tool", "A")
    assert cert.public_key() == key.public_key()
    assert platform.registry.get_device("FACTORY-0001").source == "enrolled"
    platform.verifier.verify(cert)

    with pytest.raises(ConflictError, match="already registered"):
        platform.provisioner.enroll(_csr(key, "FACTORY-0001"), "acme", "power-tool", "A")
    with pytest.raises(IdentityError, match="not a device serial"):
        platform.provisioner.enroll(_csr(key, "bad serial!"), "acme", "power-tool", "A")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(CSRRejectedError, match="P-256"):
        platform.provisioner.enroll(_csr(rsa_key, "FACTORY-0002"), "acme", "power-tool", "A")
    with pytest.raises(CSRRejectedError, match="not a PEM or DER"):
        platform.provisioner.enroll(b"garbage", "acme", "power-tool", "A")


def test_enroll_refuses_a_tampered_csr(platform: Platform) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = x509.load_pem_x509_csr(_csr(key, "FACTORY-0003")).public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b"FACTORY-0003", b"FACTORY-0004")
    with pytest.raises(CSRRejectedError, match="signature"):
        platform.provisioner.enroll(tampered, "acme", "power-tool", "A")


def test_renewal_with_the_current_key_supersedes_the_old_certificate(platform: Platform) -> None:
    serial = platform.provisioner.provision(platform.secure_elements, "acme", "power-tool", "A", 1)[
        0
    ].serial
    old = x509.load_pem_x509_certificate(platform.secure_elements.certificate(serial).encode())
    platform.verifier.verify(old)
    element = platform.secure_elements.open(serial)
    csr = element.make_csr().public_bytes(serialization.Encoding.PEM)
    new = platform.renew(csr)
    assert new.public_key() == old.public_key() and new.serial_number != old.serial_number
    assert platform.registry.get_device(serial).fingerprint == fingerprint(new)
    platform.verifier.verify(new)
    with pytest.raises(CertificateRejectedError) as err:
        platform.verifier.verify(old)
    assert err.value.code == "cert_revoked"


def test_renewal_to_a_new_key_needs_proof_from_the_current_one(platform: Platform) -> None:
    serial = platform.provisioner.provision(platform.secure_elements, "acme", "power-tool", "A", 1)[
        0
    ].serial
    element = platform.secure_elements.open(serial)
    new_key = ec.generate_private_key(ec.SECP256R1())
    csr = _csr(new_key, serial)
    with pytest.raises(CSRRejectedError, match="proof"):
        platform.provisioner.renew(csr)
    digest = hashlib.sha256(x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER))
    forged = SecureElement(serial, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(CSRRejectedError, match="does not verify"):
        platform.provisioner.renew(csr, forged.sign_digest(digest.digest()))
    cert = platform.provisioner.renew(csr, element.sign_digest(digest.digest()))
    assert cert.public_key() == new_key.public_key()


def test_revoked_or_expired_devices_cannot_renew(platform: Platform, clock: Clock) -> None:
    a, b = (
        d.serial
        for d in platform.provisioner.provision(
            platform.secure_elements, "acme", "power-tool", "A", 2
        )
    )
    platform.revoke(a, "stolen")
    csr_a = platform.secure_elements.open(a).make_csr().public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CSRRejectedError, match="revoked"):
        platform.provisioner.renew(csr_a)
    clock.advance(11 * 366 * 86400)
    csr_b = platform.secure_elements.open(b).make_csr().public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CSRRejectedError, match="expired"):
        platform.provisioner.renew(csr_b)


def test_expiring_lists_current_certificates_of_active_devices(
    platform: Platform, clock: Clock
) -> None:
    serials = [
        d.serial
        for d in platform.provisioner.provision(
            platform.secure_elements, "acme", "power-tool", "A", 3
        )
    ]
    platform.revoke(serials[0], "lost")
    days = platform.settings.identity.device_cert_days
    assert platform.registry.expiring(clock() + 30 * 86400) == []
    soon = platform.registry.expiring(clock() + (days + 1) * 86400)
    assert sorted(c.serial for c in soon) == sorted(serials[1:])
