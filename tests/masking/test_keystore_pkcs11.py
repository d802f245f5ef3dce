"""The key ring kept in a PKCS#11 token (the test session's SoftHSM2 token)."""

from __future__ import annotations

import pytest

from tether.masking.errors import KeyMaterialError
from tether.masking.keystore import open_keyring
from tether.masking.salts import KeyRing
from tether.testing import SoftHsmToken


@pytest.fixture()
def token(softhsm: SoftHsmToken) -> str:
    """The session's SoftHSM2 token, in the masking key ring's spec form."""
    return f"pkcs11:module={softhsm.module};token={softhsm.label};pin-env=MASK_PIN"


def test_round_trip_through_the_token(token: str, ring: KeyRing) -> None:
    from tether.masking.keystore_pkcs11 import store_pkcs11_keyring

    env = {"MASK_PIN": "1234"}  # the session token's PIN
    store_pkcs11_keyring(token, ring, environ=env)
    store_pkcs11_keyring(token, ring, environ=env)  # replaces, does not duplicate
    from tether.masking.keystore_pkcs11 import open_pkcs11_keyring

    assert open_pkcs11_keyring(token, environ=env) == ring
    with pytest.raises(KeyMaterialError, match="cannot open PKCS#11 token"):
        open_pkcs11_keyring(token, environ={"MASK_PIN": "0000"})


def test_spec_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MASK_PIN", raising=False)
    with pytest.raises(KeyMaterialError, match="missing pin-env="):
        open_keyring("pkcs11:module=/x.so;token=mask")
    with pytest.raises(KeyMaterialError, match="MASK_PIN"):
        open_keyring("pkcs11:module=/x.so;token=mask;pin-env=MASK_PIN")
