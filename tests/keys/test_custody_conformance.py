"""The key custody port's contract, checked on every engine: key files and PKCS#11."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tether.errors import ConflictError, CustodyError, NotFoundError
from tether.keys import KeyCustody, open_custody
from tether.testing import SoftHsmToken


@pytest.fixture(
    params=["file", pytest.param("pkcs11", marks=pytest.mark.engine("softhsm"))],
)
def custody_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file:{tmp_path / 'keys'}"
    token: SoftHsmToken = request.getfixturevalue("softhsm")
    return token.url


@pytest.fixture
def custody(custody_url: str) -> Iterator[KeyCustody]:
    opened = open_custody(custody_url)
    yield opened
    opened.close()


@pytest.fixture
def prefix() -> str:
    """A label prefix of this test's own: the session's token is shared."""
    return f"conformance/{secrets.token_hex(4)}"


def verifies(public: ec.EllipticCurvePublicKey, raw: bytes, message: bytes) -> bool:
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except Exception:
        return False
    return True


def test_create_get_exists_and_labels(custody: KeyCustody, prefix: str) -> None:
    before = custody.labels()
    assert before == sorted(before)
    made = custody.create(f"{prefix}/b")
    custody.create(f"{prefix}/a")
    assert made.label == f"{prefix}/b"
    assert isinstance(made.public_key().curve, ec.SECP256R1)

    assert custody.exists(f"{prefix}/a")
    assert not custody.exists(f"{prefix}/c")
    got = custody.get(f"{prefix}/b")
    assert got.label == f"{prefix}/b"
    assert got.public_key().public_numbers() == made.public_key().public_numbers()
    assert custody.labels() == sorted({*before, f"{prefix}/a", f"{prefix}/b"})


def test_a_taken_label_is_a_conflict(custody: KeyCustody, prefix: str) -> None:
    first = custody.create(f"{prefix}/key")
    with pytest.raises(ConflictError):
        custody.create(f"{prefix}/key")
    # The first key is untouched.
    assert custody.get(f"{prefix}/key").public_key().public_numbers() == (
        first.public_key().public_numbers()
    )


def test_an_unknown_label_is_not_found(custody: KeyCustody, prefix: str) -> None:
    with pytest.raises(NotFoundError):
        custody.get(f"{prefix}/missing")
    assert not custody.exists(f"{prefix}/missing")


@pytest.mark.parametrize("bad", ["", "a b", "../escape", "a//b", "/abs", "tenants/x/"])
def test_a_malformed_label_is_refused(custody: KeyCustody, bad: str) -> None:
    with pytest.raises(CustodyError):
        custody.create(bad)


def test_signatures_verify_with_the_public_key(custody: KeyCustody, prefix: str) -> None:
    key = custody.create(f"{prefix}/signer")
    message = b"record payload"
    raw = key.sign_digest(hashlib.sha256(message).digest())
    assert len(raw) == 64
    assert verifies(key.public_key(), raw, message)
    assert not verifies(key.public_key(), raw, b"another payload")
    again = custody.get(f"{prefix}/signer").sign_digest(hashlib.sha256(message).digest())
    assert verifies(key.public_key(), again, message)
    with pytest.raises(CustodyError):
        key.sign_digest(b"short")


def test_keys_outlive_the_custodian_that_made_them(
    custody_url: str, custody: KeyCustody, prefix: str
) -> None:
    made = custody.create(f"{prefix}/kept")
    reopened = open_custody(custody_url)
    try:
        kept = reopened.get(f"{prefix}/kept")
        assert kept.public_key().public_numbers() == made.public_key().public_numbers()
        raw = kept.sign_digest(hashlib.sha256(b"m").digest())
    finally:
        reopened.close()
    # Closing the second custodian left the first one working.
    assert verifies(made.public_key(), raw, b"m")
    assert verifies(made.public_key(), made.sign_digest(hashlib.sha256(b"n").digest()), b"n")
