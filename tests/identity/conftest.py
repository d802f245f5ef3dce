"""Fixtures for the identity tests: a platform on the embedded engines in a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.platform import Platform
from tether.settings import load_settings


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def open_platform(data_dir: Path, clock: Clock | None = None, **overrides: object) -> Platform:
    settings = load_settings(
        {"data_dir": str(data_dir), **overrides}, config_file=data_dir / "none.toml", environ={}
    )
    return Platform.open(settings, clock=clock) if clock else Platform.open(settings)


@pytest.fixture
def clock() -> Clock:
    import time

    return Clock(time.time())


@pytest.fixture
def platform(tmp_path: Path, clock: Clock) -> Iterator[Platform]:
    p = open_platform(tmp_path / "tether", clock)
    p.authority.init_tenant("acme")
    yield p
    p.close()
