"""Firmware over HTTPS: signed time, manifests and images with byte ranges, who may fetch."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.doors.tls import device_client, https_door
from tests.gate.conftest import Device, provision
from tests.identity.conftest import Clock, open_platform
from tether.doors.firmware import parse_range
from tether.errors import ManifestRefusedError
from tether.firmware.artifacts import NewImage
from tether.firmware.delta import apply_patch
from tether.firmware.manifest import read_envelope
from tether.firmware.timestamp import read_time
from tether.firmware.verify import Device as Verifier
from tether.firmware.verify import verify
from tether.platform import Platform
from tether.service.app import create_app

NOW = 1_790_000_100.0
V1 = os.urandom(48 * 1024)
V2 = V1[:10_000] + b"fixed" * 400 + V1[12_000:]


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    p = open_platform(tmp_path / "t", Clock(NOW), admin_token="op")
    p.authority.init_tenant("acme")
    p.firmware_key(create=True)
    for version, data, base in (("1.0.0", V1, None), ("1.1.0", V2, "1.0.0")):
        image = tmp_path / f"{version}.bin"
        image.write_bytes(data)
        p.artifacts.add(NewImage(image, "oral-care-brush", version, ["B"], 2, delta_from=base))
    yield p
    p.close()


def owner_token(p: Platform, brush: Device) -> str:
    account = p.accounts.create_account("acme", NOW)
    p.accounts.bond(brush.serial, account.id, NOW, actor="factory", reason="first owner")
    return p.accounts.issue_token(account.id, NOW)


def test_parse_range() -> None:
    assert parse_range("bytes=0-99", 1000) == (0, 100)
    assert parse_range("bytes=900-", 1000) == (900, 1000)
    assert parse_range("bytes=-100", 1000) == (900, 1000)
    assert parse_range("bytes=990-2000", 1000) == (990, 1000)  # cut to the end
    for unservable in (
        "bytes=1000-",
        "bytes=5-4",
        "bytes=-0",
        "bytes=-",
        "lines=1-2",
        "bytes=0-1,5-6",
    ):
        assert parse_range(unservable, 1000) is None, unservable


def test_a_phone_app_fetches_for_its_bonded_brush(platform: Platform) -> None:
    brush = provision(platform, "oral-care-brush", hw="B")
    token = owner_token(platform, brush)
    auth = {"Authorization": f"Bearer {token}"}
    http = TestClient(create_app(platform))
    anchors = [platform.firmware_public_key()]

    # The signed time answers the device's nonce, and only that nonce.
    nonce = secrets.token_hex(16)
    answer = http.get("/v1/time", params={"nonce": nonce}, headers=auth)
    assert answer.status_code == 200
    assert read_time(answer.content, nonce, anchors) == int(NOW)
    with pytest.raises(ManifestRefusedError, match="another nonce") as info:
        read_time(answer.content, secrets.token_hex(16), anchors)
    assert info.value.reason == "bad_time"
    assert http.get("/v1/time", params={"nonce": "short"}, headers=auth).status_code == 400
    assert http.get("/v1/time", params={"nonce": nonce}).status_code == 401

    # The manifest, then the image in two ranges, verify as a device would.
    envelope = http.get("/v1/firmware/oral-care-brush/1.1.0/manifest", headers=auth)
    assert envelope.status_code == 200
    whole = http.get("/v1/firmware/oral-care-brush/1.1.0/image", headers=auth)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert whole.content == V2
    head = http.get(
        "/v1/firmware/oral-care-brush/1.1.0/image", headers={**auth, "Range": "bytes=0-9999"}
    )
    assert head.status_code == 206
    assert head.headers["content-range"] == f"bytes 0-9999/{len(V2)}"
    tail = http.get(
        "/v1/firmware/oral-care-brush/1.1.0/image", headers={**auth, "Range": "bytes=10000-"}
    )
    assert tail.status_code == 206 and head.content + tail.content == V2
    device = Verifier(hw="B", security_version=1, anchors=anchors, device_class="oral-care-brush")
    manifest = verify(read_envelope(envelope.content), device, NOW, head.content + tail.content)
    assert manifest.version == "1.1.0"

    # The delta from 1.0.0 rebuilds 1.1.0; there is none from elsewhere.
    delta = "/v1/firmware/oral-care-brush/1.1.0/image?delta_from=1.0.0"
    patch = http.get(delta, headers=auth)
    digest = hashlib.sha256
    rebuilt = apply_patch(V1, patch.content, digest(V1).hexdigest(), digest(V2).hexdigest())
    assert patch.status_code == 200 and rebuilt == V2
    signed = http.get("/v1/firmware/oral-care-brush/1.1.0/manifest?delta_from=1.0.0", headers=auth)
    assert read_envelope(signed.content).manifest().delta_from == "1.0.0"
    missing = http.get("/v1/firmware/oral-care-brush/1.1.0/image?delta_from=0.9.0", headers=auth)
    assert missing.status_code == 404 and "from 1.0.0" in missing.json()["detail"]

    # Outside the image: 416 with the size; unknown versions: 404.
    far = http.get(
        "/v1/firmware/oral-care-brush/1.1.0/image",
        headers={**auth, "Range": f"bytes={len(V2)}-"},
    )
    assert far.status_code == 416 and far.headers["content-range"] == f"bytes */{len(V2)}"
    assert http.get("/v1/firmware/oral-care-brush/9.9.9/image", headers=auth).status_code == 404


def test_no_device_of_the_caller_runs_the_image(platform: Platform) -> None:
    http = TestClient(create_app(platform))
    rev_a = provision(platform, "oral-care-brush", hw="A")  # the images are for B only
    token = owner_token(platform, rev_a)
    refused = http.get(
        "/v1/firmware/oral-care-brush/1.0.0/image", headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 403 and "hardware B" in refused.json()["detail"]
    lonely = platform.accounts.create_account("acme", NOW)
    nobody = platform.accounts.issue_token(lonely.id, NOW)
    assert (
        http.get(
            "/v1/firmware/oral-care-brush/1.0.0/manifest",
            headers={"Authorization": f"Bearer {nobody}"},
        ).status_code
        == 403
    )
    assert http.get("/v1/firmware/oral-care-brush/1.0.0/image").status_code == 401


def test_a_device_resumes_its_download_over_tls(platform: Platform, tmp_path: Path) -> None:
    """Direct mode: the device's own certificate; a cut download goes on from its last byte."""
    brush, cart = provision(platform, "oral-care-brush", hw="B"), provision(platform, "retail-cart")
    url = "/v1/firmware/oral-care-brush/1.0.0/image"
    with https_door(platform, tmp_path / "https") as base:
        with device_client(platform, brush, base, tmp_path) as http:
            got = b""
            with http.stream("GET", url) as first:  # the link drops after 10,000 bytes
                for piece in first.iter_bytes(1000):
                    got += piece
                    if len(got) >= 10_000:
                        break
            while len(got) < len(V1):
                rest = http.get(url, headers={"Range": f"bytes={len(got)}-{len(got) + 16383}"})
                assert rest.status_code == 206
                got += rest.content
            assert hashlib.sha256(got).digest() == hashlib.sha256(V1).digest()
        with device_client(platform, cart, base, tmp_path) as http:  # not its class's firmware
            assert http.get(url).status_code == 403
