"""A platform with one tenant and its MQTT front door on a real Mosquitto, per module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.mqtt.helpers import Session, TlsFiles, device_files
from tether.platform import Platform
from tether.settings import load_settings
from tether.testing import MosquittoInstance, free_port

TENANT = "acme"


def open_platform(data_dir: Path) -> Platform:
    """A platform on the embedded engines with free MQTT ports and a 1 s revocation poll."""
    settings = load_settings(
        {
            "data_dir": str(data_dir),
            "mqtt": {"port": free_port(), "internal_port": free_port()},
            "identity": {"revocation_poll_seconds": 1},
        },
        config_file=data_dir / "none.toml",
        environ={},
    )
    return Platform.open(settings)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = open_platform(tmp_path_factory.mktemp("mqtt") / "tether")
    platform.authority.init_tenant(TENANT)
    yield platform
    platform.close()


@pytest.fixture(scope="module")
def mosquitto(platform: Platform) -> Iterator[MosquittoInstance]:
    """The front door with its revocation watcher running."""
    with MosquittoInstance(platform, watch=True) as broker:
        yield broker


@pytest.fixture
def provision(platform: Platform) -> Callable[[int], list[str]]:
    """Make ``n`` simulated devices of the tenant; returns their serials."""

    def make(count: int = 1) -> list[str]:
        made = platform.provisioner.provision(
            platform.secure_elements, TENANT, "retail-cart", "A", count
        )
        return [device.serial for device in made]

    return make


@pytest.fixture
def tls_files(
    platform: Platform, mosquitto: MosquittoInstance, tmp_path: Path
) -> Callable[[str], TlsFiles]:
    """The TLS files of one of the platform's simulated devices."""
    return lambda serial: device_files(
        platform.secure_elements, serial, mosquitto, tmp_path / "devices"
    )


@pytest.fixture
def sessions() -> Iterator[Callable[[str, TlsFiles], Session]]:
    """Make MQTT sessions that are closed when the test ends."""
    made: list[Session] = []

    def make(client_id: str, tls: TlsFiles) -> Session:
        session = Session(client_id, tls)
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()
