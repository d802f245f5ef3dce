"""What the simulator's acceptance tests share: reading a finished run's platform again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.platform import Platform
from tether.settings import load_settings


@pytest.fixture
def reopen() -> Iterator[object]:
    """Open the platform a run left in its work directory, to read what landed."""
    opened: list[Platform] = []

    def open_(workdir: Path) -> Platform:
        directory = workdir / "platform"
        settings = load_settings(
            {"data_dir": str(directory)}, config_file=directory / "tether.toml", environ={}
        )
        platform = Platform.open(settings)
        opened.append(platform)
        return platform

    yield open_
    for platform in opened:
        platform.close()
