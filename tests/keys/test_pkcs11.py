"""Key custody in a PKCS#11 token (SoftHSM2): keys made and kept inside the token.

The CA keys and the firmware-signing key live in the token, cannot be read out, and
sign what ``cryptography`` and ``openssl`` then verify.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from tether.errors import CustodyError
from tether.identity.ca import to_pem
from tether.keys.base import SigningKey
from tether.keys.pkcs11 import Pkcs11KeyCustody
from tether.platform import FIRMWARE_KEY_LABEL, Platform
from tether.settings import load_settings
from tether.testing import SoftHsmToken


@pytest.fixture(scope="module")
def custody(softhsm: SoftHsmToken) -> Iterator[Pkcs11KeyCustody]:
    custody = Pkcs11KeyCustody(softhsm.url)
    yield custody
    custody.close()


@pytest.fixture(scope="module")
def token_session(softhsm: SoftHsmToken, custody: Pkcs11KeyCustody) -> Iterator[Any]:
    """A session of our own on the token, to read what the token says about its objects.

    It opens without a PIN: PKCS#11 login belongs to the process, and the custodian
    has logged in, so this session sees the private objects too.
    """
    token = pkcs11.lib(str(softhsm.module)).get_token(token_label=softhsm.label)
    session = token.open()
    yield session
    session.close()


def label(name: str) -> str:
    return f"test/{name}-{secrets.token_hex(4)}"


def private_object(session: Any, key_label: str) -> Any:
    [found] = list(
        session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: key_label})
    )
    return found


def der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def assert_held_in_token(session: Any, key_label: str) -> None:
    """The key was made in the token, is kept there, and its value cannot be read."""
    key = private_object(session, key_label)
    assert key[Attribute.TOKEN] is True  # persistent in the token
    assert key[Attribute.PRIVATE] is True  # visible only after login
    assert key[Attribute.LOCAL] is True  # generated inside the token
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.ALWAYS_SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    with pytest.raises(AttributeSensitive):
        key[Attribute.VALUE]


def test_keys_are_generated_sensitive_and_never_extractable(
    custody: Pkcs11KeyCustody, token_session: Any
) -> None:
    key_label = label("attrs")
    key = custody.create(key_label)
    assert isinstance(key.public_key().curve, ec.SECP256R1)
    assert_held_in_token(token_session, key_label)


def test_signatures_made_in_the_token_verify_with_cryptography(
    custody: Pkcs11KeyCustody,
) -> None:
    key = custody.create(label("sign"))
    message = b"tether firmware manifest"
    raw = key.sign_digest(hashlib.sha256(message).digest())
    assert len(raw) == 64  # raw r || s, as PKCS#11 returns it
    key.public_key().verify(der(raw), message, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        key.public_key().verify(der(raw), message + b"!", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(CustodyError, match="32 bytes"):
        key.sign_digest(message)


def open_platform(data_dir: Path, **overrides: object) -> Platform:
    settings = load_settings(
        {"data_dir": str(data_dir), **overrides}, config_file=data_dir / "none.toml", environ={}
    )
    return Platform.open(settings)


def openssl_verify(chain: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            str(chain),
            str(cert),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_tenant_ca_in_the_token_issues_certificates_openssl_verifies(
    softhsm: SoftHsmToken, token_session: Any, tmp_path: Path
) -> None:
    tenant = f"hsm-{secrets.token_hex(3)}"
    platform = open_platform(tmp_path / "tether", keys_url=softhsm.url)
    foreign = open_platform(tmp_path / "foreign")  # key files: another install's CA
    try:
        root, manufacturing = platform.authority.init_tenant(tenant)
        foreign.authority.init_tenant(tenant)
        for ca in (root, manufacturing):
            assert ca.key_label in platform.custody.labels()
            assert_held_in_token(token_session, ca.key_label or "")
        assert not (tmp_path / "tether" / "keys").exists()  # nothing fell back to key files

        [device] = platform.provisioner.provision(
            platform.secure_elements, tenant, "oral-care-brush", "B", 1
        )
        cert = tmp_path / "device.pem"
        cert.write_text(platform.secure_elements.certificate(device.serial))
        chain = tmp_path / "chain.pem"
        chain.write_text(platform.authority.chain_pem(tenant))
        foreign_chain = tmp_path / "foreign-chain.pem"
        foreign_chain.write_text(foreign.authority.chain_pem(tenant))

        verified = openssl_verify(chain, cert)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.strip() == f"{cert}: OK"
        refused = openssl_verify(foreign_chain, cert)
        assert refused.returncode != 0
        assert "unable to get local issuer certificate" in refused.stdout + refused.stderr

        # A CRL signed in the token verifies against its CA too.
        crl = platform.authority.crl(manufacturing)
        assert crl.is_signature_valid(manufacturing.cert.public_key())  # type: ignore[arg-type]
        assert to_pem(manufacturing.cert) in chain.read_text()
    finally:
        platform.close()
        foreign.close()


def test_the_firmware_signing_key_lives_in_the_token_apart_from_the_ca_keys(
    softhsm: SoftHsmToken, custody: Pkcs11KeyCustody, token_session: Any, tmp_path: Path
) -> None:
    # CA keys and the firmware key in the same token: two custodians share its login.
    platform = open_platform(
        tmp_path / "tether", keys_url=softhsm.url, firmware_keys_url=softhsm.url
    )
    try:
        # The session's token is shared: the firmware tests may have made the key already.
        made = platform.firmware_custody.exists(FIRMWARE_KEY_LABEL)
        key: SigningKey = platform.firmware_key(create=not made)
        assert key.label == FIRMWARE_KEY_LABEL
        assert FIRMWARE_KEY_LABEL in platform.firmware_custody.labels()
        assert_held_in_token(token_session, FIRMWARE_KEY_LABEL)
        assert not (tmp_path / "tether" / "firmware-keys").exists()

        image = b"\x7fELF firmware image"
        raw = platform.firmware_key().sign_digest(hashlib.sha256(image).digest())
        platform.firmware_public_key().verify(der(raw), image, ec.ECDSA(hashes.SHA256()))
    finally:
        platform.close()
    # Closing that platform's custodians left the token logged in for the others.
    other = custody.get(FIRMWARE_KEY_LABEL)
    raw = other.sign_digest(hashlib.sha256(b"still logged in").digest())
    other.public_key().verify(der(raw), b"still logged in", ec.ECDSA(hashes.SHA256()))
