"""The key ring kept in a PKCS#11 token (SoftHSM2, started fresh in a temp dir)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tether.masking.errors import KeyMaterialError
from tether.masking.keystore import open_keyring
from tether.masking.salts import KeyRing

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


@pytest.fixture()
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pytest.importorskip("pkcs11")
    module = next((m for m in MODULES if Path(m).exists()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "mask",
            "--so-pin",
            "5678",
            "--pin",
            "1234",
        ],
        check=True,
        capture_output=True,
    )
    return f"pkcs11:module={module};token=mask;pin-env=MASK_PIN"


def test_round_trip_through_the_token(token: str, ring: KeyRing) -> None:
    from tether.masking.keystore_pkcs11 import store_pkcs11_keyring

    env = {"MASK_PIN": "1234"}
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
