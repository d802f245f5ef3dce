"""Fixtures for the identity tests: a platform in a temp dir, its entity store on each engine.

``platform`` runs once with the entity store in SQLite and once in PostgreSQL
(a fresh migrated database named by the data directory's ``engines.toml``, so a
second platform opened on the same directory shares it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import ENTITY_ENGINES, SETTINGS_FILE, entity_data_dir
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
        {"data_dir": str(data_dir), **overrides}, config_file=data_dir / SETTINGS_FILE, environ={}
    )
    return Platform.open(settings, clock=clock) if clock else Platform.open(settings)


@pytest.fixture
def clock() -> Clock:
    import time

    return Clock(time.time())


@pytest.fixture(params=ENTITY_ENGINES)
def data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """The platform's data directory; its entity store on the engine of the parameter."""
    with entity_data_dir(request, tmp_path / "tether") as prepared:
        yield prepared


@pytest.fixture
def platform(data_dir: Path, clock: Clock) -> Iterator[Platform]:
    p = open_platform(data_dir, clock)
    p.authority.init_tenant("acme")
    yield p
    p.close()
