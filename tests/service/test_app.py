from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from tests.identity.conftest import open_platform
from tether.platform import Platform
from tether.service.app import create_app

TOKEN = "operator-secret"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    p = open_platform(tmp_path / "t", admin_token=TOKEN)
    p.authority.init_tenant("acme")
    yield p
    p.close()


@pytest.fixture
def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform))


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _csr(key: ec.EllipticCurvePrivateKey, cn: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_health(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["tenants"] == ["acme"] and body["devices"] == 0


def test_ca_chain_is_public(client: TestClient) -> None:
    res = client.get("/v1/tenants/acme/ca-chain")
    assert res.status_code == 200 and res.text.count("BEGIN CERTIFICATE") == 2
    missing = client.get("/v1/tenants/nobody/ca-chain")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_enroll_needs_the_operator_token(client: TestClient) -> None:
    body = {
        "csr": _csr(ec.generate_private_key(ec.SECP256R1()), "F-1"),
        "tenant": "acme",
        "class": "power-tool",
        "hw": "A",
    }
    assert client.post("/v1/certificates/enroll", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/v1/certificates/enroll", json=body, headers=wrong).status_code == 401
    res = client.post("/v1/certificates/enroll", json=body, headers=AUTH)
    assert res.status_code == 200, res.text
    cert = x509.load_pem_x509_certificate(res.json()["certificate"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "F-1"
    again = client.post("/v1/certificates/enroll", json=body, headers=AUTH)
    assert again.status_code == 409


def test_malformed_requests_get_400_and_bad_csrs_422(client: TestClient) -> None:
    res = client.post("/v1/certificates/enroll", json={"tenant": "acme"}, headers=AUTH)
    assert res.status_code == 400 and "csr" in res.json()["detail"]
    bad = {"csr": "junk", "tenant": "acme", "class": "power-tool", "hw": "A"}
    res = client.post("/v1/certificates/enroll", json=bad, headers=AUTH)
    assert res.status_code == 422 and res.json()["error"] == "csr_rejected"


def test_renew_revoke_and_expiring(client: TestClient, platform: Platform) -> None:
    serial = platform.provisioner.provision(platform.secure_elements, "acme", "power-tool", "A", 1)[
        0
    ].serial
    element = platform.secure_elements.open(serial)
    csr = element.make_csr().public_bytes(serialization.Encoding.PEM).decode()
    res = client.post("/v1/certificates/renew", json={"csr": csr})
    assert res.status_code == 200, res.text
    res = client.post("/v1/certificates/renew", json={"csr": csr, "proof": "%%%"})
    assert res.status_code == 422 and "base64" in res.json()["detail"]
    new_key = ec.generate_private_key(ec.SECP256R1())
    res = client.post(
        "/v1/certificates/renew",
        json={"csr": _csr(new_key, serial), "proof": base64.b64encode(b"x" * 64).decode()},
    )
    assert res.status_code == 422

    assert client.get(f"/v1/devices/{serial}", headers=AUTH).json()["status"] == "active"
    res = client.get("/v1/certificates/expiring?within=20000d", headers=AUTH)
    assert [c["serial"] for c in res.json()["certificates"]] == [serial]
    res = client.get("/v1/certificates/expiring?within=soon", headers=AUTH)
    assert res.status_code == 400 and "duration" in res.json()["detail"]
    res = client.post(f"/v1/devices/{serial}/revoke", json={"reason": "stolen"}, headers=AUTH)
    assert res.json()["status"] == "revoked" and res.json()["revoke_reason"] == "stolen"
    assert client.post(f"/v1/devices/{serial}/revoke", headers=AUTH).status_code == 409
    assert client.get("/v1/devices/NOPE", headers=AUTH).status_code == 404
