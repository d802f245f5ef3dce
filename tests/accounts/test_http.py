"""Accounts and pairing over HTTP."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.accounts.conftest import OPERATOR_TOKEN, Fleet
from tether.service.app import create_app

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
def client(fleet: Fleet) -> TestClient:
    return TestClient(create_app(fleet.platform))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _new_account(client: TestClient, tenant: str = "acme") -> tuple[str, str]:
    res = client.post("/v1/accounts", json={"tenant": tenant}, headers=OPERATOR)
    assert res.status_code == 200, res.text
    body = res.json()
    return body["account"], body["token"]


def test_operators_create_accounts_with_a_token(client: TestClient, fleet: Fleet) -> None:
    assert client.post("/v1/accounts", json={"tenant": "acme"}).status_code == 401
    res = client.post("/v1/accounts", json={"tenant": "acme"}, headers=_bearer("nope"))
    assert res.status_code == 401
    account, token = _new_account(client)
    assert re.fullmatch(r"acc_\w{16}", account)
    assert fleet.platform.accounts.authenticate(token).id == account
    missing = client.post("/v1/accounts", json={"tenant": "initech"}, headers=OPERATOR)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert client.post("/v1/accounts", json={}, headers=OPERATOR).status_code == 400


def test_an_account_token_is_not_an_operator_token(client: TestClient) -> None:
    _, token = _new_account(client)
    res = client.post("/v1/accounts", json={"tenant": "acme"}, headers=_bearer(token))
    assert res.status_code == 401


def test_a_challenge_needs_a_valid_account_token(client: TestClient, fleet: Fleet) -> None:
    body = {"device": fleet.acme[0]}
    for headers in ({}, _bearer("nope"), {"Authorization": "Basic abc"}, OPERATOR):
        res = client.post("/v1/pairing/challenges", json=body, headers=headers)
        assert res.status_code == 401, headers
        assert res.json()["error"] == "unauthorized" and "token" in res.json()["detail"]


def test_an_account_gets_a_challenge_for_a_device_of_its_tenant(
    client: TestClient, fleet: Fleet
) -> None:
    account, token = _new_account(client)
    res = client.post(
        "/v1/pairing/challenges", json={"device": fleet.acme[0]}, headers=_bearer(token)
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert re.fullmatch(r"[0-9a-f]{28}", body["challenge"])
    assert body["expires_at"] == fleet.clock() + 600
    entry = fleet.platform.accounts.audit(fleet.acme[0], limit=1)[0]
    assert (entry.actor, entry.action) == (account, "pairing.challenge")


def test_challenges_for_unknown_or_foreign_devices_are_refused(
    client: TestClient, fleet: Fleet
) -> None:
    _, token = _new_account(client)
    unknown = client.post("/v1/pairing/challenges", json={"device": "NOPE"}, headers=_bearer(token))
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    foreign = client.post(
        "/v1/pairing/challenges", json={"device": fleet.globex[0]}, headers=_bearer(token)
    )
    assert foreign.status_code == 404 and foreign.json() == unknown.json() | {
        "detail": foreign.json()["detail"]
    }
    assert "globex" not in foreign.json()["detail"]
    empty = client.post("/v1/pairing/challenges", json={"device": ""}, headers=_bearer(token))
    assert empty.status_code == 400


def test_a_revoked_token_stops_working_at_once(client: TestClient, fleet: Fleet) -> None:
    _, token = _new_account(client)
    assert client.get("/v1/accounts/me/devices", headers=_bearer(token)).status_code == 200
    fleet.platform.accounts.revoke_token(token, fleet.clock())
    assert client.get("/v1/accounts/me/devices", headers=_bearer(token)).status_code == 401


def test_an_account_lists_the_devices_it_owns(client: TestClient, fleet: Fleet) -> None:
    account, token = _new_account(client)
    other, other_token = _new_account(client)
    res = client.get("/v1/accounts/me/devices", headers=_bearer(token))
    assert res.json() == {"account": account, "devices": []}

    for serial in fleet.acme[:2]:
        got = client.post("/v1/pairing/challenges", json={"device": serial}, headers=_bearer(token))
        # What the gate does once the device's signed bond record arrives from this account:
        assert fleet.platform.accounts.complete_pairing(
            serial, got.json()["challenge"], account, fleet.clock()
        )
    devices = client.get("/v1/accounts/me/devices", headers=_bearer(token)).json()["devices"]
    assert devices == [{"serial": s, "since": fleet.clock()} for s in fleet.acme[:2]]
    theirs = client.get("/v1/accounts/me/devices", headers=_bearer(other_token)).json()
    assert theirs == {"account": other, "devices": []}
    assert client.get("/v1/accounts/me/devices").status_code == 401
