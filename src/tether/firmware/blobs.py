"""The blob store: immutable bytes kept under the SHA-256 of their content.

A port with one engine so far, a directory (``file:<dir>``); an S3-compatible
engine slots in behind ``open_blob_store`` by its URL scheme. Keys are
``sha256/<64 hex digits>``: the same bytes stored twice are one blob, and a key
names its content for good, so readers never see a blob change under them.

The directory engine writes each blob to a temporary file in the store, flushes
it to disk, and renames it into place: a reader sees the whole blob or none of
it, even if the writer dies half way. Reads take byte ranges, as HTTPS range
requests will ask for them.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tether.errors import BlobRangeError, EngineError, NotFoundError, SettingsError

#: Bytes read or written at a time when streaming.
CHUNK = 1 << 20

_KEY = re.compile(r"sha256/([0-9a-f]{64})")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class BlobInfo:
    key: str
    sha256: str
    size: int


def key_for(sha256: str) -> str:
    """The blob key of content with this SHA-256 (lowercase hex)."""
    return f"sha256/{sha256}"


def _digest_of(key: str) -> str:
    match = _KEY.fullmatch(key)
    if match is None:
        raise NotFoundError(f"{key!r} is not a blob key; keys look like sha256/<64 hex digits>")
    return match.group(1)


class BlobStore(ABC):
    """Content-addressed, immutable blobs."""

    url: str

    @abstractmethod
    def put(self, source: BinaryIO, on_progress: Progress | None = None) -> BlobInfo:
        """Store everything ``source`` yields; report each chunk's length to ``on_progress``."""

    def put_bytes(self, data: bytes) -> BlobInfo:
        import io

        return self.put(io.BytesIO(data))

    @abstractmethod
    def stat(self, key: str) -> BlobInfo:
        """The blob's size; NotFoundError when there is no such blob."""

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFoundError:
            return False
        return True

    @abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``start`` up to (not including) ``end`` (None: the blob's end).

        BlobRangeError when the range is empty or reaches outside the blob (an
        empty blob reads whole as ``b""``).
        """

    def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk: int = CHUNK
    ) -> Iterator[bytes]:
        """The same bytes as ``read``, in pieces of at most ``chunk`` bytes."""
        size = self.stat(key).size
        stop = _check_range(key, start, end, size)
        at = start
        while at < stop:
            piece = self.read(key, at, min(at + chunk, stop))
            yield piece
            at += len(piece)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections or handles."""


def _check_range(key: str, start: int, end: int | None, size: int) -> int:
    stop = size if end is None else end
    if start == 0 and stop == 0 and size == 0:
        return 0
    if start < 0 or stop > size or start >= stop:
        raise BlobRangeError(key, start, end, size)
    return stop


class DirectoryBlobStore(BlobStore):
    """Blobs as files under ``root/sha256/<first two hex digits>/<digest>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file:{root}"
        try:
            (root / "sha256").mkdir(parents=True, exist_ok=True)
            (root / "tmp").mkdir(exist_ok=True)
        except OSError as exc:
            raise EngineError(f"cannot use {root} as the blob store: {exc.strerror}") from exc

    def _path(self, key: str) -> Path:
        digest = _digest_of(key)
        return self.root / "sha256" / digest[:2] / digest

    def put(self, source: BinaryIO, on_progress: Progress | None = None) -> BlobInfo:
        hasher = hashlib.sha256()
        size = 0
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp", prefix="put-")
        except OSError as exc:
            raise EngineError(f"cannot write to the blob store {self.root}: {exc}") from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while piece := source.read(CHUNK):
                    hasher.update(piece)
                    out.write(piece)
                    size += len(piece)
                    if on_progress is not None:
                        on_progress(len(piece))
                out.flush()
                os.fsync(out.fileno())
            sha = hasher.hexdigest()
            key = key_for(sha)
            final = self._path(key)
            final.parent.mkdir(exist_ok=True)
            # Same name, same bytes: a blob already there is kept, the copy dropped.
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise EngineError(f"cannot write to the blob store {self.root}: {exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return BlobInfo(key, sha, size)

    def stat(self, key: str) -> BlobInfo:
        path = self._path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"no blob {key!r} in the blob store {self.root}") from None
        return BlobInfo(key, _digest_of(key), size)

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        path = self._path(key)
        try:
            with path.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                stop = _check_range(key, start, end, size)
                fh.seek(start)
                return fh.read(stop - start)
        except FileNotFoundError:
            raise NotFoundError(f"no blob {key!r} in the blob store {self.root}") from None


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: URL schemes ``open_blob_store`` knows, with what they take.
SCHEMES = {"file": "file:<directory>"}


def open_blob_store(url: str) -> BlobStore:
    """The blob store ``url`` names; SettingsError naming the schemes it knows."""
    scheme, sep, rest = url.partition(":")
    if sep and scheme == "file":
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise SettingsError(f"blob_url {url!r} names no directory; write file:<directory>")
        return DirectoryBlobStore(Path(path))
    known = ", ".join(SCHEMES.values())
    raise SettingsError(
        f"blob_url {url!r} has a scheme tether has no blob store for; supported: {known} "
        "(an S3-compatible engine is planned)"
    )
