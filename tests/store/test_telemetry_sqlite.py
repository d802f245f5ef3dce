"""The SQLite engine's own promises: its queries are index range scans, never table scans."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tether.store.telemetry import open_telemetry_store


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    path = tmp_path / "telemetry.sqlite"
    open_telemetry_store(f"sqlite:///{path}").close()
    return sqlite3.connect(path)


def plan(conn: sqlite3.Connection, sql: str, *params: object) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_the_table_is_clustered_by_device_and_time(conn: sqlite3.Connection) -> None:
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'telemetry'").fetchone()[0]
    assert "WITHOUT ROWID" in sql
    assert "PRIMARY KEY (serial, ts, dedupe_key)" in sql
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_latest_and_by_device_are_primary_key_range_scans(conn: sqlite3.Connection) -> None:
    from tether.store.telemetry import base as engine

    latest = plan(
        conn,
        f"SELECT {engine.COLUMNS} FROM telemetry WHERE serial = ? ORDER BY {engine.DESC} LIMIT ?",
        "SN1",
        50,
    )
    assert "SEARCH telemetry USING PRIMARY KEY (serial=?)" in latest
    assert "RIGHT PART OF ORDER BY" in latest  # only ties in ts are sorted


@pytest.mark.parametrize(
    ("index", "where"),
    [
        ("telemetry_by_site", "tenant = ? AND site = ?"),
        ("telemetry_by_class", "tenant = ? AND device_class = ?"),
        ("telemetry_by_tenant", "tenant = ? AND ? IS NOT NULL"),
    ],
)
def test_ranges_use_their_index(conn: sqlite3.Connection, index: str, where: str) -> None:
    got = plan(
        conn,
        f"SELECT * FROM telemetry INDEXED BY {index} WHERE {where} AND ts >= ? AND ts < ? "
        "ORDER BY ts LIMIT 10",
        "acme",
        "x",
        0,
        10,
    )
    assert f"USING INDEX {index}" in got
    assert "ts>? AND ts<?" in got
