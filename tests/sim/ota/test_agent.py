"""A device's update agent against real update jobs (``tether.firmware.jobs.make_job``).

The cart's path without the network: the job is read and its signed time
checked against the device's anchor, the image goes into the inactive slot in
pieces (one cut short, as by a dropped link, resumes from the receiver's
cursor), and the agent reports the contract's ``ota-status`` states.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.identity.conftest import Clock, open_platform
from tether.firmware.artifacts import NewImage
from tether.firmware.catalog import Artifact
from tether.firmware.jobs import make_job
from tether.platform import Platform
from tether.sim.ota import OtaDevice, build_image
from tether.sim.ota.agent import UpdateAgent

NOW = 1_800_000_000.0
JOB = "ab" * 16
SIZE = 6000


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    p = open_platform(tmp_path / "t", Clock(NOW))
    p.firmware_key(create=True)
    yield p
    p.close()


def add(p: Platform, tmp_path: Path, version: str) -> tuple[Artifact, bytes]:
    data = build_image(version, SIZE, seed=7)
    path = tmp_path / f"{version}.bin"
    path.write_bytes(data)
    added = p.artifacts.add(NewImage(path, "retail-cart", version, ["B"], 1))
    return added.artifact, data


def device(p: Platform, image: bytes) -> OtaDevice:
    dev = OtaDevice.provision(
        image,
        "3.2.0",
        "B",
        [p.firmware_public_key()],
        security_version=1,
        device_class="retail-cart",
    )
    dev.power_on()
    return dev


def download(agent: UpdateAgent, image: bytes, cut: int | None = None) -> str:
    """Fetch as a cart does: pieces from the cursor; ``cut`` drops the link mid-piece once."""
    outcome = "more"
    while outcome == "more":
        span = agent.next_range()
        assert span is not None
        start, stop = span
        stop = min(stop, start + 4096)
        if cut is not None:
            stop, cut = start + cut, None
        outcome = agent.feed(start, image[start:stop])
    return outcome


def test_a_job_is_fetched_in_pieces_resumed_and_installed(
    platform: Platform, tmp_path: Path
) -> None:
    _, base = add(platform, tmp_path, "3.2.0")
    artifact, new = add(platform, tmp_path, "3.3.0")
    dev = device(platform, base)
    said: list[dict[str, Any]] = []
    agent = UpdateAgent(dev, [platform.firmware_public_key()], lambda _t, body: said.append(body))
    message = make_job(artifact, "7", "https://door", platform.firmware_key(), NOW, job=JOB)
    job = agent.read(message)
    assert job is not None and job.time == int(NOW)
    assert agent.start(job) is not None
    assert agent.next_range() == (0, SIZE)
    # The link drops 1,000 bytes in: whole chunks are kept, the rest is asked for again.
    assert download(agent, new, cut=1000) == "installed"
    assert [b["state"] for b in said] == ["downloading", "verifying", "installed"]
    assert {b["rollout"] for b in said} == {"7"} and {b["version"] for b in said} == {"3.3.0"}
    boot = dev.boot_until_up()
    assert boot.record is not None and boot.record.body() == {
        "fw": "3.3.0",
        "slot": "B",
        "previous_fw": "3.2.0",
        "rolled_back": False,
    }
    dev.acknowledge()
    assert dev.flash.meta.pending is None and dev.flash.meta.good == "B"
    # The same job again (QoS 1) is one job: nothing to do.
    again = agent.read(message)
    assert again is not None and agent.start(again) is None


def test_the_return_job_keeps_the_id_and_brings_the_old_version_back(
    platform: Platform, tmp_path: Path
) -> None:
    old, base = add(platform, tmp_path, "3.2.0")
    artifact, new = add(platform, tmp_path, "3.3.0")
    dev = device(platform, base)
    agent = UpdateAgent(dev, [platform.firmware_public_key()], lambda _t, _b: None)
    key = platform.firmware_key()
    job = agent.read(make_job(artifact, "7", "https://door", key, NOW, job=JOB))
    assert job is not None and agent.start(job) is not None
    assert download(agent, new) == "installed"
    dev.boot_until_up()
    dev.acknowledge()
    back = agent.read(make_job(old, "7", "https://door", key, NOW + 60, job=JOB))
    assert back is not None and agent.start(back) is not None
    assert download(agent, base) == "installed"
    boot = dev.boot_until_up()
    assert boot.version == "3.2.0" and boot.record is not None
    assert boot.record.previous_fw == "3.3.0" and not boot.record.rolled_back


def test_a_job_whose_time_another_key_signed_is_refused_and_reported(
    platform: Platform, tmp_path: Path
) -> None:
    _, base = add(platform, tmp_path, "3.2.0")
    artifact, _ = add(platform, tmp_path, "3.3.0")
    dev = device(platform, base)
    said: list[dict[str, Any]] = []
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    agent = UpdateAgent(dev, [stranger], lambda _t, body: said.append(body))
    message = make_job(artifact, "7", "https://door", platform.firmware_key(), NOW, job=JOB)
    assert agent.read(message) is None
    assert said == [
        {
            "rollout": "7",
            "version": "3.3.0",
            "state": "failed",
            "reason": said[0]["reason"],
        }
    ]
    assert said[0]["reason"].startswith("bad_time")
    assert dev.version == "3.2.0"
