"""Bad URLs and broken databases meet typed errors that say what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tether.errors import ConflictError, EngineError, SettingsError
from tether.store import sqlitedb
from tether.stream import StreamEntry, open_stream


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("bogus://somewhere/x", "unknown scheme 'bogus'"),
        ("no-scheme-at-all", r"unknown scheme '\(none\)'"),
        ("sqlite:///", "names no database file"),
        ("sqlite:///:memory:", "names no database file"),
        ("sqlite://host/x.sqlite", "not an SQLite URL"),
        ("sqlite:///x.sqlite?journal=off", "unknown parameter 'journal'"),
        ("sqlite:///x.sqlite?synchronous=off", "synchronous='off'"),
    ],
)
def test_bad_urls_are_settings_errors(url: str, match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        open_stream(url, "raw")


def test_the_error_names_the_known_schemes() -> None:
    with pytest.raises(SettingsError, match="known schemes: nats, sqlite"):
        open_stream("kafka://127.0.0.1:9092", "raw")


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "stream.sqlite"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(EngineError, match="not a usable SQLite database"):
        open_stream(f"sqlite:///{path}", "raw")


def test_a_directory_that_cannot_exist(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(EngineError, match="cannot create the directory"):
        open_stream(f"sqlite:///{tmp_path / 'file' / 'stream.sqlite'}", "raw")


def test_synchronous_normal_is_accepted(tmp_path: Path) -> None:
    with open_stream(f"sqlite:///{tmp_path / 's.sqlite'}?synchronous=normal", "raw") as s:
        assert s.append([StreamEntry(None, b"x")]) == [1]


@pytest.mark.parametrize(
    ("exc", "kind", "match"),
    [
        (sqlite3.OperationalError("database is locked"), EngineError, "stayed locked"),
        (sqlite3.DatabaseError("file is not a database"), EngineError, "not a usable"),
        (sqlite3.OperationalError("attempt to write a readonly database"), EngineError, "perm"),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), ConflictError, "duplicate"),
        (sqlite3.OperationalError("disk I/O error"), EngineError, "disk I/O error"),
    ],
)
def test_driver_errors_are_translated(exc: sqlite3.Error, kind: type, match: str) -> None:
    err = sqlitedb.translate(exc, "stream 'raw'", Path("/data/stream.sqlite"))
    assert isinstance(err, kind)
    assert "stream 'raw' at /data/stream.sqlite" in str(err)
    assert match in str(err)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: StreamEntry("", b"x"),
        lambda: StreamEntry(None, "text"),  # type: ignore[arg-type]
        lambda: StreamEntry(None, b"x", {"a": 1}),  # type: ignore[dict-item]
    ],
)
def test_entries_validate_themselves(bad: object) -> None:
    with pytest.raises(ValueError):
        bad()  # type: ignore[operator]


def test_entries_copy_their_inputs() -> None:
    headers = {"a": "1"}
    entry = StreamEntry(None, bytearray(b"ab"), headers)  # type: ignore[arg-type]
    headers["a"] = "2"
    assert entry.data == b"ab" and isinstance(entry.data, bytes)
    assert entry.headers == {"a": "1"}
