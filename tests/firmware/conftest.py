"""Fixtures for the firmware tests: a platform with a firmware key, on each entity engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import ENTITY_ENGINES, SETTINGS_FILE, entity_data_dir
from tether.platform import Platform
from tether.settings import load_settings

#: A fixed "now" for the platform: 2027-01-15 08:00:00 UTC.
NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def open_platform(data_dir: Path, clock: Clock, **overrides: object) -> Platform:
    settings = load_settings(
        {"data_dir": str(data_dir), **overrides}, config_file=data_dir / SETTINGS_FILE, environ={}
    )
    return Platform.open(settings, clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=ENTITY_ENGINES)
def data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    with entity_data_dir(request, tmp_path / "tether") as prepared:
        yield prepared


@pytest.fixture
def platform(data_dir: Path, clock: Clock) -> Iterator[Platform]:
    p = open_platform(data_dir, clock)
    p.firmware_key(create=True)
    yield p
    p.close()


def write_image(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
