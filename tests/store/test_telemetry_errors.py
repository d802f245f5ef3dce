"""Bad URLs, broken files and bad events meet typed errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.store.conftest import event
from tether.errors import EngineError, SettingsError
from tether.store.telemetry import TelemetryStore, open_telemetry_store


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("mysql://localhost/tether", "unknown scheme 'mysql'"),
        ("telemetry.sqlite", r"unknown scheme '\(none\)'"),
        ("sqlite:///", "names no database file"),
        ("sqlite:///t.sqlite?cache=shared", "unknown parameter 'cache'"),
    ],
)
def test_bad_urls_are_settings_errors(url: str, match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        open_telemetry_store(url)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.sqlite"
    path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(EngineError, match="not a usable SQLite database"):
        open_telemetry_store(f"sqlite:///{path}")


def test_a_store_from_a_newer_tether(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(EngineError, match="newer than this tether"):
        open_telemetry_store(f"sqlite:///{path}")


@pytest.mark.parametrize(
    "fields",
    [
        {"tenant": ""},
        {"serial": None},
        {"dedupe_key": ""},
        {"seq": -1},
        {"body": ["not", "a", "dict"]},
    ],
)
def test_events_validate_themselves(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        event(**fields)


def test_a_body_that_is_not_json_is_refused_before_anything_is_written(
    store: TelemetryStore,
) -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        store.write([event(seq=1), event(seq=2, body={"when": object()})])
    assert store.count() == 0
    with pytest.raises(ValueError, match="TelemetryEvent"):
        store.write(["not an event"])  # type: ignore[list-item]
