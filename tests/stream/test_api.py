"""The ports' public surface: curated exports, and no driver imported by a port."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tether.store.telemetry
import tether.stream


@pytest.mark.parametrize("module", [tether.stream, tether.store.telemetry])
def test_all_is_curated(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    assert all(hasattr(module, name) for name in names)


def test_ports_import_no_driver() -> None:
    code = (
        "import sys, tether.stream, tether.store.telemetry\n"
        "drivers = ('sqlite3', 'sqlalchemy', 'nats', 'psycopg')\n"
        "loaded = sorted(m for m in drivers if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_engines_are_an_explicit_table() -> None:
    assert tether.stream.ENGINES == {
        "nats": "tether.stream.jetstream:JetStreamStream",
        "sqlite": "tether.stream.sqlite:SqliteStream",
    }
    assert set(tether.store.telemetry.ENGINES) == {"sqlite", "postgresql", "postgresql+psycopg"}
