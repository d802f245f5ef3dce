"""The directory blob store: content addressing, whole-or-nothing writes, range reads."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from tether.errors import BlobRangeError, EngineError, NotFoundError, SettingsError
from tether.firmware import blobs
from tether.firmware.blobs import DirectoryBlobStore, key_for, open_blob_store


def test_bytes_are_stored_under_their_sha256_and_read_back(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path / "blobs")
    data = os.urandom(5000)
    info = store.put_bytes(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.key == key_for(info.sha256) and info.size == 5000
    assert store.read(info.key) == data
    assert store.stat(info.key).size == 5000 and store.exists(info.key)
    # The same bytes again are the same blob.
    assert store.put_bytes(data) == info
    assert len(list((tmp_path / "blobs" / "sha256").rglob("*"))) == 2  # one folder, one file


def test_ranges_read_what_https_range_requests_will_ask_for(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path)
    data = bytes(range(256)) * 40
    key = store.put_bytes(data).key
    assert store.read(key, 0, 1) == data[:1]
    assert store.read(key, 100, 356) == data[100:356]
    assert store.read(key, len(data) - 10) == data[-10:]
    assert b"".join(store.iter_range(key, 7, 9000, chunk=1000)) == data[7:9000]
    for start, end in [(-1, 10), (0, len(data) + 1), (50, 50), (60, 50), (len(data), None)]:
        with pytest.raises(BlobRangeError, match="outside blob") as info:
            store.read(key, start, end)
        assert info.value.size == len(data)


def test_an_empty_blob_reads_whole_but_has_no_ranges(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path)
    key = store.put_bytes(b"").key
    assert store.read(key) == b""
    assert list(store.iter_range(key)) == []
    with pytest.raises(BlobRangeError):
        store.read(key, 0, 1)


def test_missing_blobs_and_malformed_keys_are_not_found(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path)
    absent = key_for("0" * 64)
    with pytest.raises(NotFoundError, match="no blob"):
        store.read(absent)
    with pytest.raises(NotFoundError, match="no blob"):
        store.stat(absent)
    assert not store.exists(absent)
    with pytest.raises(NotFoundError, match="not a blob key"):
        store.read("../../etc/passwd")


class _Breaks(io.RawIOBase):
    """A source that yields some bytes and then fails, as a dying upload would."""

    def __init__(self) -> None:
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent >= 3:
            raise OSError("connection reset")
        self.sent += 1
        return b"x" * 1000


def test_a_write_that_fails_half_way_leaves_nothing_behind(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path)
    with pytest.raises(EngineError, match="cannot write to the blob store"):
        store.put(_Breaks())  # type: ignore[arg-type]
    assert not list((tmp_path / "sha256").rglob("*"))
    assert not list((tmp_path / "tmp").iterdir())


def test_a_writer_killed_before_its_rename_is_never_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryBlobStore(tmp_path)
    data = b"complete image" * 100

    def killed(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # the process stops between the write and the rename

    monkeypatch.setattr(blobs.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        store.put_bytes(data)
    monkeypatch.undo()
    key = key_for(hashlib.sha256(data).hexdigest())
    assert not store.exists(key)
    # Trying again stores it whole.
    assert store.put_bytes(data).key == key and store.read(key) == data


def test_progress_is_reported_per_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs, "CHUNK", 1024)
    seen: list[int] = []
    DirectoryBlobStore(tmp_path).put(io.BytesIO(b"z" * 3000), on_progress=seen.append)
    assert seen == [1024, 1024, 952]


def test_the_url_picks_the_engine_and_names_the_schemes_it_knows(tmp_path: Path) -> None:
    for url in (f"file:{tmp_path}/a", f"file://{tmp_path}/b"):
        store = open_blob_store(url)
        assert isinstance(store, DirectoryBlobStore)
        assert store.read(store.put_bytes(b"1").key) == b"1"
    assert (tmp_path / "a" / "sha256").is_dir() and (tmp_path / "b" / "sha256").is_dir()
    with pytest.raises(SettingsError, match=r"supported: file:<directory>"):
        open_blob_store("s3://bucket/firmware")
    with pytest.raises(SettingsError, match="names no directory"):
        open_blob_store("file:")


def test_a_store_that_cannot_be_created_is_an_engine_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(EngineError, match="cannot use"):
        DirectoryBlobStore(tmp_path / "file" / "blobs")
