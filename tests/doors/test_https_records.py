"""POST /v1/records: gateway mode over HTTP, direct mode over real TLS."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.doors.tls import device_client, https_door, trusting
from tests.gate.conftest import Device, provision
from tests.identity.conftest import Clock, open_platform
from tests.platforms import PLATFORM_ENGINES, platform_data_dir
from tether.platform import Platform
from tether.service.app import create_app

HEALTH = {"battery_pct": 80}
NOW_S = 1_790_000_100.0


@pytest.fixture(params=PLATFORM_ENGINES)
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    with platform_data_dir(request, tmp_path / "t") as data_dir:
        p = open_platform(data_dir, Clock(NOW_S), admin_token="op")
        p.authority.init_tenant("acme")
        yield p
        p.close()


@pytest.fixture
def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def owner(platform: Platform, brush: Device) -> str:
    account = platform.accounts.create_account("acme", NOW_S)
    token = platform.accounts.issue_token(account.id, NOW_S)
    platform.accounts.bond(brush.serial, account.id, NOW_S, actor="factory", reason="first owner")
    return token


def session_frame(seq: int, head: int = 5) -> bytes:
    return (
        bytes([0x11, 0b110])
        + struct.pack("<IIH", seq, 1_789_990_000, 120)
        + bytes([30, 30, 30, 30, 0, 70])
        + struct.pack("<H", head)
    )


def upload(client: TestClient, token: str, records: list[dict[str, str]]) -> httpx.Response:
    return client.post(
        "/v1/records", json={"records": records}, headers={"Authorization": f"Bearer {token}"}
    )


def test_gateway_upload_judges_each_record_on_its_own(
    platform: Platform, client: TestClient
) -> None:
    brush = provision(platform, "oral-care-brush")
    token = owner(platform, brush)
    hello = brush.record(
        1,
        "hello",
        {
            "fw": "1.4.2",
            "hw": "B",
            "lowest_seq_held": 1,
            "capabilities": ["session-frames-v1", "warp-drive"],
        },
    )
    good = brush.frame(session_frame(2))
    forged = bytearray(brush.frame(session_frame(3)))
    forged[3] ^= 0xFF
    res = upload(
        client,
        token,
        [
            {"device": brush.serial, "data": b64(hello)},
            {"device": brush.serial, "data": b64(good)},
            {"device": brush.serial, "data": b64(bytes(forged))},
            {"device": brush.serial, "data": "***not base64***"},
            {"device": "bad serial!", "data": b64(good)},
            {"device": brush.serial, "data": b64(brush.frame(session_frame(4)[:19]))},
            {"device": brush.serial, "data": b64(good)},
        ],
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert [(r["outcome"], r["code"]) for r in body["results"]] == [
        ("accepted", None),
        ("accepted", None),
        ("rejected", "bad_signature"),
        ("rejected", "malformed"),
        ("rejected", "malformed"),
        ("rejected", "malformed"),
        ("duplicate", None),
    ]
    assert body["results"][1]["seq"] == 2
    assert body["use"] == {brush.serial: ["session-frames-v1"]}  # unknown ones are ignored
    assert len(platform.stream("raw").read(0, 100)) == 5  # what reached the gate is kept
    assert len(platform.stream("dead-letter").read(0, 100)) == 4


def test_replay_into_the_same_account_is_duplicate_and_into_another_not_bonded(
    platform: Platform,
    client: TestClient,
) -> None:
    brush = provision(platform, "oral-care-brush")
    token = owner(platform, brush)
    captured = [{"device": brush.serial, "data": b64(brush.frame(session_frame(7)))}]
    assert upload(client, token, captured).json()["results"][0]["outcome"] == "accepted"
    assert upload(client, token, captured).json()["results"][0]["outcome"] == "duplicate"
    thief = platform.accounts.create_account("acme", NOW_S)
    thief_token = platform.accounts.issue_token(thief.id, NOW_S)
    result = upload(client, thief_token, captured).json()["results"][0]
    assert (result["outcome"], result["code"]) == ("rejected", "not_bonded")


def test_pairing_moves_ownership_only_with_the_devices_signed_bond_record(
    platform: Platform,
    client: TestClient,
) -> None:
    brush = provision(platform, "oral-care-brush")
    old_token = owner(platform, brush)
    new = platform.accounts.create_account("acme", NOW_S)
    new_token = platform.accounts.issue_token(new.id, NOW_S)
    res = client.post(
        "/v1/pairing/challenges",
        json={"device": brush.serial},
        headers={"Authorization": f"Bearer {new_token}"},
    )
    assert res.status_code == 200, res.text
    challenge = res.json()["challenge"]
    # Without the button hold there is no signed bond record: a forged one fails.
    fake = bytes([0x31, 0]) + struct.pack("<I", 10) + bytes.fromhex(challenge)
    forged = fake + bytes(64)
    result = upload(client, new_token, [{"device": brush.serial, "data": b64(forged)}])
    assert result.json()["results"][0]["code"] == "bad_signature"
    assert platform.accounts.owner(brush.serial) != new.id
    # The device's own bond record, relayed by the new owner's phone, moves ownership.
    bond = brush.frame(fake)
    assert (
        upload(client, new_token, [{"device": brush.serial, "data": b64(bond)}]).json()["results"][
            0
        ]["outcome"]
        == "accepted"
    )
    assert platform.accounts.owner(brush.serial) == new.id
    later = [{"device": brush.serial, "data": b64(brush.frame(session_frame(11)))}]
    assert upload(client, old_token, later).json()["results"][0]["code"] == "not_bonded"
    assert upload(client, new_token, later).json()["results"][0]["outcome"] == "accepted"


def test_request_level_errors(platform: Platform, client: TestClient) -> None:
    brush = provision(platform, "oral-care-brush")
    token = owner(platform, brush)
    auth = {"Authorization": f"Bearer {token}"}
    assert client.post("/v1/records", json={"records": []}).status_code == 401
    assert (
        client.post(
            "/v1/records", json={"records": []}, headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 401
    )
    assert client.post("/v1/records", content=b"{nope", headers=auth).status_code == 400
    assert client.post("/v1/records", json={"recs": []}, headers=auth).status_code == 400
    many = [{"device": brush.serial, "data": "AA=="}] * 501
    assert client.post("/v1/records", json={"records": many}, headers=auth).status_code == 413
    huge = json.dumps({"records": [{"device": brush.serial, "data": "A" * (1024 * 1024)}]})
    assert client.post("/v1/records", content=huge, headers=auth).status_code == 413
    big = [{"device": brush.serial, "data": b64(b"x" * (16 * 1024 + 1))}]
    assert upload(client, token, big).json()["results"][0]["code"] == "too_large"


def test_throttling_answers_429_with_retry_after(tmp_path: Path) -> None:
    p = open_platform(tmp_path / "t", Clock(NOW_S), ingest={"requests_per_second": 0.5, "burst": 2})
    p.authority.init_tenant("acme")
    brush = provision(p, "oral-care-brush")
    token = owner(p, brush)
    client = TestClient(create_app(p))
    codes = [upload(client, token, []).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    res = upload(client, token, [])
    assert res.status_code == 429 and int(res.headers["Retry-After"]) >= 1
    p.close()


def test_direct_mode_over_tls_with_the_device_certificate(
    platform: Platform, tmp_path: Path
) -> None:
    cart, other = provision(platform, "retail-cart"), provision(platform, "retail-cart")
    records = [
        {"device": cart.serial, "data": b64(cart.record(1, "health", HEALTH))},
        {"device": other.serial, "data": b64(other.record(1, "health", HEALTH))},
    ]
    with https_door(platform, tmp_path / "https") as base:
        with device_client(platform, cart, base, tmp_path) as http:
            res = http.post("/v1/records", json={"records": records})
            assert res.status_code == 200, res.text
            assert [(r["outcome"], r["code"]) for r in res.json()["results"]] == [
                ("accepted", None),
                ("rejected", "device_mismatch"),
            ]
            platform.revoke(cart.serial, "stolen")
            refused = http.post("/v1/records", json={"records": records})
            assert refused.status_code == 401 and refused.json()["error"] == "cert_revoked"
        with httpx.Client(verify=trusting(platform), base_url=base) as http:
            assert http.post("/v1/records", json={"records": records}).status_code == 401
