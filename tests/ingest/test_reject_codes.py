"""Every reject code of the contract, through the MQTT door and the HTTPS door.

Each bad record goes out with a good one beside it; the good one always lands.
``not_bonded`` exists only for gateway uploads (an MQTT device speaks for itself);
``rate_limited`` is covered in ``test_rate_limit.py``.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from tests.gate.conftest import Device
from tests.identity.conftest import Clock
from tests.ingest.helpers import HEALTH, MqttDevice, device, open_platform, wait_for
from tether.identity.ca import to_pem
from tether.platform import Platform
from tether.runtime import Runtime
from tether.service.app import create_app

# Long enough that the broker does not drop the revoked device before it publishes.
IDENTITY = {"revocation_poll_seconds": 30, "device_cert_days": 30}


def stranger(p: Platform, tmp: Path) -> tuple[Device, Path, Path]:
    """A device whose certificate chains to the tenant's CA but which was never registered."""
    from tether.devices.secure_element import SecureElement

    key = ec.generate_private_key(ec.SECP256R1())
    cert, _ = p.authority.issue_device_certificate(
        "acme", "RC-STRANGER", "retail-cart", key.public_key()
    )
    cert_path, key_path = tmp / "stranger.pem", tmp / "stranger.key"
    cert_path.write_text(to_pem(cert))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Device("RC-STRANGER", SecureElement("RC-STRANGER", key)), cert_path, key_path


@pytest.mark.engine("mosquitto")
def test_every_reject_code_over_mqtt(tmp_path: Path) -> None:
    clock = Clock(time.time())
    p = open_platform(tmp_path, clock, identity=IDENTITY)
    rt = Runtime(p)
    rt.start()
    try:
        cart = MqttDevice(p, rt, device(p), tmp_path)
        other = device(p)
        bad: dict[str, bytes] = {
            "malformed": cart.dev.frame(b"{not json"),
            "too_large": cart.dev.record(1, "fault", {"code": "E1", "detail": "x" * 17000}),
            "device_mismatch": cart.dev.frame(other.record(2, "health", HEALTH, signed=False)),
            "bad_signature": other.record(3, "health", HEALTH),
            "unknown_type": cart.dev.record(4, "teleport", {}),
            "schema_invalid": cart.dev.record(5, "health", {"battery_pct": -4}),
        }
        got = []
        for record in bad.values():
            cart.send(record)
            cart.good()
            got.append(cart.reject())
        assert got == list(bad)

        unknown_dev, cert_path, key_path = stranger(p, tmp_path)
        unknown = MqttDevice(p, rt, unknown_dev, tmp_path, (cert_path, key_path))
        unknown.good()
        assert unknown.reject() == "unknown_device"

        revoked = MqttDevice(p, rt, device(p), tmp_path)
        p.revoke(revoked.dev.serial, "stolen")
        revoked.good()
        assert revoked.reject() == "cert_revoked"

        retiring = MqttDevice(p, rt, device(p), tmp_path)
        p.authority.rotate("acme", overlap_days=1)
        assert rt.front_door is not None
        rt.front_door.enforce()  # the broker learns the new CA now, not at the next poll
        fresh = MqttDevice(p, rt, device(p), tmp_path)  # from the new CA
        # The platform's clock moves on; the TLS sessions made before stay up.
        clock.advance(2 * 86400)
        retiring.good()
        assert retiring.reject() == "untrusted_cert"
        fresh.good()
        wait_for(lambda: p.telemetry.count() == 7)  # every good record landed, once
        clock.advance(31 * 86400)  # past the device certificates' 30 days
        fresh.good()
        assert fresh.reject() == "cert_expired"
    finally:
        rt.stop()
        p.close()


def test_every_reject_code_over_https(tmp_path: Path) -> None:
    clock = Clock(time.time())
    p = open_platform(tmp_path, clock, identity=IDENTITY)
    client = TestClient(create_app(p))
    account = p.accounts.create_account("acme", clock())
    token = p.accounts.issue_token(account.id, clock())
    brushes = [device(p, "oral-care-brush") for _ in range(3)]
    for b in brushes:
        p.accounts.bond(b.serial, account.id, clock(), actor="shop", reason="sold")
    brush, revoked, retiring = brushes
    stray = device(p, "oral-care-brush")  # bonded to nobody
    seq = iter(range(1, 10_000))

    def hello(dev: Device) -> bytes:
        return dev.record(next(seq), "hello", {"fw": "1.0.0", "capabilities": []})

    companion = [brush]  # a device in good standing, whose record goes beside each bad one

    def bonded() -> Device:
        dev = device(p, "oral-care-brush")
        p.accounts.bond(dev.serial, account.id, clock(), actor="shop", reason="sold")
        return dev

    def upload(serial: str, data: bytes) -> str | None:
        good = {
            "device": companion[0].serial,
            "data": base64.b64encode(hello(companion[0])).decode(),
        }
        res = client.post(
            "/v1/records",
            headers={"Authorization": f"Bearer {token}"},
            json={"records": [{"device": serial, "data": base64.b64encode(data).decode()}, good]},
        )
        results = res.json()["results"]
        assert results[1]["outcome"] == "accepted", results
        return results[0]["code"]

    assert upload(brush.serial, brush.frame(b"{not json")) == "malformed"
    assert upload(brush.serial, hello(brush) + b"x" * 17000) == "too_large"
    assert upload("OCB-NOBODY", hello(brush)) == "unknown_device"
    assert (
        upload(
            revoked.serial,
            revoked.frame(
                b'{"device":"%s","seq":9,"ts":1,"type":"hello","v":1,"body":{}}'
                % brush.serial.encode()
            ),
        )
        == "device_mismatch"
    )
    assert upload(stray.serial, hello(stray)) == "not_bonded"
    assert (
        upload(brush.serial, revoked.record(1, "hello", {"fw": "1", "capabilities": []}))
        == "bad_signature"
    )
    assert upload(brush.serial, brush.record(next(seq), "teleport", {})) == "unknown_type"
    assert upload(brush.serial, brush.record(next(seq), "hello", {"fw": 7})) == "schema_invalid"
    p.revoke(revoked.serial, "stolen")
    assert upload(revoked.serial, hello(revoked)) == "cert_revoked"
    p.authority.rotate("acme", overlap_days=1)
    clock.advance(2 * 86400)
    companion[0] = bonded()  # from the new CA
    assert upload(retiring.serial, hello(retiring)) == "untrusted_cert"
    aging = companion[0]
    clock.advance(31 * 86400)  # past the device certificates' 30 days
    companion[0] = bonded()  # issued now, so valid now
    assert upload(aging.serial, hello(aging)) == "cert_expired"
    p.close()
