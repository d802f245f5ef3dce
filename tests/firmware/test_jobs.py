"""Update jobs: made for the version a device runs, read as a device reads them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.firmware.conftest import NOW, write_image
from tether.errors import ManifestRefusedError
from tether.firmware.artifacts import NewImage
from tether.firmware.jobs import make_job, read_job
from tether.firmware.verify import Device, verify
from tether.platform import Platform

V1 = os.urandom(20_000)
V2 = V1[:5_000] + b"patched" * 50 + V1[6_000:]
BASE = "https://fleet.example:8443/"


@pytest.fixture
def added(platform: Platform, tmp_path: Path) -> Platform:
    platform.artifacts.add(
        NewImage(write_image(tmp_path / "1.bin", V1), "retail-cart", "1.0.0", ["A"], 1)
    )
    platform.artifacts.add(
        NewImage(
            write_image(tmp_path / "2.bin", V2),
            "retail-cart",
            "1.1.0",
            ["A"],
            1,
            delta_from="1.0.0",
        )
    )
    return platform


def test_a_device_on_the_base_gets_the_delta_others_the_full_image(added: Platform) -> None:
    p = added
    artifact = p.artifact_catalog.get("retail-cart", "1.1.0")
    anchors = [p.firmware_public_key()]
    on_base = read_job(
        make_job(artifact, "r1", BASE, p.firmware_key(), NOW, running="1.0.0"), anchors
    )
    assert on_base.url == f"{BASE}v1/firmware/retail-cart/1.1.0/image?delta_from=1.0.0"
    assert on_base.size == artifact.delta_size and on_base.time == int(NOW)
    assert on_base.manifest.manifest().delta_from == "1.0.0"
    other = read_job(
        make_job(artifact, "r1", BASE, p.firmware_key(), NOW, running="0.9.0"), anchors
    )
    assert other.url.endswith("/1.1.0/image") and other.size == len(V2)
    device = Device(hw="A", security_version=1, anchors=anchors, device_class="retail-cart")
    assert verify(other.manifest, device, other.time, V2).version == "1.1.0"
    # Through a JSON round trip, as it crosses MQTT.
    again = json.loads(json.dumps(make_job(artifact, "r1", BASE, p.firmware_key(), NOW)))
    assert read_job(again, anchors).rollout == "r1"


def test_a_job_a_device_cannot_trust(added: Platform) -> None:
    p = added
    artifact = p.artifact_catalog.get("retail-cart", "1.0.0")
    anchors = [p.firmware_public_key()]
    job = make_job(artifact, "r1", BASE, p.firmware_key(), NOW)
    stranger = [ec.generate_private_key(ec.SECP256R1()).public_key()]
    with pytest.raises(ManifestRefusedError) as info:
        read_job(job, stranger)  # the time statement is signed by a key the device lacks
    assert info.value.reason == "bad_time"
    swapped = {**job, "job": "0" * 32}  # the time answers another job
    with pytest.raises(ManifestRefusedError, match="another nonce"):
        read_job(swapped, anchors)
    for broken, reason in (
        ({**job, "type": "reboot"}, "type"),
        ({**job, "url": "http://plain"}, "https"),
        ({**job, "size": -1}, "size"),
        ({k: v for k, v in job.items() if k != "manifest"}, "manifest envelope"),
    ):
        with pytest.raises(ManifestRefusedError, match=reason):
            read_job(broken, anchors)
