"""Every reject code of the contract, through the MQTT door and the HTTPS door.

Each bad record goes out with a good one beside it; the good one always lands.
``not_bonded`` exists only for gateway uploads (an MQTT device speaks for itself);
``rate_limited`` is covered in ``test_rate_limit.py``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from tests.gate.conftest import Device
from tests.identity.conftest import Clock
from tests.mqtt.helpers import Session, TlsFiles
from tether.identity.ca import to_pem
from tether.platform import Platform
from tether.runtime import Runtime
from tether.service.app import create_app
from tether.settings import load_settings
from tether.testing import free_port

HEALTH = {"battery_pct": 77}


def open_platform(tmp: Path, clock: Clock) -> Platform:
    settings = load_settings(
        {
            "data_dir": str(tmp / "t"),
            "admin_token": "op",
            "mqtt": {"port": free_port(), "internal_port": free_port()},
            # Long enough that the broker does not drop the revoked device before it publishes.
            "identity": {"revocation_poll_seconds": 30, "device_cert_days": 30},
        },
        config_file=tmp / "none.toml",
        environ={},
    )
    p = Platform.open(settings, clock=clock)
    p.authority.init_tenant("acme")
    return p


def device(p: Platform, cls: str = "retail-cart") -> Device:
    serial = p.provisioner.provision(p.secure_elements, "acme", cls, "A", 1)[0].serial
    return Device(serial, p.secure_elements.open(serial))


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


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class MqttDevice:
    def __init__(
        self,
        p: Platform,
        rt: Runtime,
        dev: Device,
        tmp: Path,
        files: tuple[Path, Path] | None = None,
    ) -> None:
        assert rt.front_door is not None
        if files is None:
            cert = tmp / f"{dev.serial}.pem"
            cert.write_text(p.secure_elements.certificate(dev.serial))
            files = (cert, dev.element.export_key_for_tls(tmp / f"{dev.serial}.key"))
        self.dev = dev
        self.session = Session(dev.serial, TlsFiles(rt.front_door.layout.service_ca, *files))
        assert self.session.connect(p.settings.mqtt.port)
        self.session.subscribe(f"tether/v1/{dev.serial}/rejects")
        self.seq = 100

    def send(self, record: bytes) -> None:
        self.session.publish(f"tether/v1/{self.dev.serial}/records", record)

    def good(self) -> None:
        self.seq += 1
        self.send(self.dev.record(self.seq, "health", HEALTH))

    def reject(self, timeout: float = 20.0) -> str:
        msg = self.session.messages.get(timeout=timeout)
        return str(json.loads(msg.payload)["code"])


@pytest.mark.engine("mosquitto")
def test_every_reject_code_over_mqtt(tmp_path: Path) -> None:
    clock = Clock(time.time())
    p = open_platform(tmp_path, clock)
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
    p = open_platform(tmp_path, clock)
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
