from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.identity.conftest import Clock, open_platform
from tether.errors import ConflictError, IdentityError, NotFoundError
from tether.identity.ca import fingerprint
from tether.platform import Platform


def _device_cert(p: Platform, tenant: str = "acme") -> x509.Certificate:
    made = p.provisioner.provision(p.secure_elements, tenant, "oral-care-brush", "B", 1)
    pem = p.secure_elements.certificate(made[0].serial)
    return x509.load_pem_x509_certificate(pem.encode())


def _openssl_verify(
    chain: str, cert: x509.Certificate, tmp: Path
) -> subprocess.CompletedProcess[str]:
    from cryptography.hazmat.primitives import serialization

    (tmp / "chain.pem").write_text(chain)
    (tmp / "device.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            str(tmp / "chain.pem"),
            str(tmp / "device.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_device_certificate_follows_the_contract(platform: Platform) -> None:
    cert = _device_cert(platform)
    assert cert.version == x509.Version.v3
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(cn, str) and cn.startswith("OCB-")
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_openssl_accepts_the_chain_and_refuses_a_foreign_one(
    platform: Platform, tmp_path: Path, clock: Clock
) -> None:
    cert = _device_cert(platform)
    good = _openssl_verify(platform.authority.chain_pem("acme"), cert, tmp_path)
    assert good.returncode == 0, good.stderr + good.stdout
    foreign = open_platform(tmp_path / "foreign", clock)
    foreign.authority.init_tenant("acme")
    bad = _openssl_verify(foreign.authority.chain_pem("acme"), cert, tmp_path)
    assert bad.returncode != 0
    assert "unable to get local issuer certificate" in bad.stderr + bad.stdout
    foreign.close()


def test_tenant_names_and_duplicates(platform: Platform) -> None:
    with pytest.raises(ConflictError):
        platform.authority.init_tenant("acme")
    with pytest.raises(IdentityError, match="tenant name"):
        platform.authority.init_tenant("Not A Name")
    with pytest.raises(NotFoundError, match="tether ca init"):
        platform.authority.issuing_ca("nobody")


def test_rotation_keeps_the_old_ca_trusted_for_the_overlap(
    platform: Platform, clock: Clock
) -> None:
    old_cert = _device_cert(platform)
    new_ca = platform.authority.rotate("acme", overlap_days=30)
    new_cert = _device_cert(platform)
    assert new_cert.issuer == new_ca.cert.subject != old_cert.issuer
    trusted = {ca.id for ca in platform.authority.trusted_manufacturing("acme")}
    assert len(trusted) == 2
    platform.verifier.verify(old_cert)
    platform.verifier.verify(new_cert)
    chain = platform.authority.chain_pem("acme")
    assert chain.count("BEGIN CERTIFICATE") == 3  # two manufacturing CAs and the root

    clock.advance(31 * 86400)
    retired = platform.authority.retire_expired()
    assert [ca.id for ca in retired] != []
    assert [ca.id for ca in platform.authority.trusted_manufacturing("acme")] == [new_ca.id]
    fresh = open_platform(platform.settings.data_dir, clock).verifier
    with pytest.raises(Exception, match="untrusted_cert"):
        fresh.verify(old_cert)
    assert fresh.verify(new_cert).fingerprint == fingerprint(new_cert)


def test_crl_lists_revoked_and_superseded_certificates(platform: Platform) -> None:
    cert = _device_cert(platform)
    serial = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    ca = platform.authority.issuing_ca("acme")
    assert len(list(platform.authority.crl(ca))) == 0
    platform.revoke(str(serial), "lost")
    crl = platform.authority.crl(ca)
    assert crl.is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]
    revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert revoked is not None


def test_service_certificates_are_apart_from_device_trust(platform: Platform) -> None:
    server, _key = platform.authority.issue_service_certificate(
        "broker", ["localhost", "127.0.0.1"]
    )
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    with pytest.raises(Exception, match="untrusted_cert"):
        client, _ = platform.authority.issue_service_certificate("tether:control")
        platform.verifier.verify(client)
