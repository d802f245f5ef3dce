"""Firmware signed by a key that lives in a PKCS#11 token (SoftHSM2)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.firmware.conftest import NOW, Clock, open_platform, write_image
from tether.firmware.artifacts import NewImage
from tether.firmware.verify import Device, verify
from tether.platform import FIRMWARE_KEY_LABEL
from tether.testing import SoftHsmToken


def test_a_manifest_signed_in_the_token_verifies_against_its_public_key(
    softhsm: SoftHsmToken, tmp_path: Path
) -> None:
    p = open_platform(tmp_path / "tether", Clock(), firmware_keys_url=softhsm.url)
    try:
        # The session's token is shared: another test may have made the key already.
        if not p.firmware_custody.exists(FIRMWARE_KEY_LABEL):
            p.firmware_key(create=True)
        image = os.urandom(10_000)
        added = p.artifacts.add(
            NewImage(write_image(tmp_path / "fw.bin", image), "oral-care-brush", "3.2.1", ["C"], 7)
        )
        device = Device(hw="C", security_version=7, anchors=[p.firmware_public_key()])
        assert verify(added.artifact.manifest, device, NOW + 1, image).version == "3.2.1"
        assert not (tmp_path / "tether" / "firmware-keys").exists()
    finally:
        p.close()
