"""The stream port: durable, append-only, named streams with consumer offsets.

tether keeps three streams: ``raw`` (records as the front doors received them,
kept for replay), ``events`` (the accepted-event log, unique on (device, seq))
and ``dead-letter`` (rejected records with their code). Each is opened by name
from the engine the stream URL names; one engine holds many streams.

Offsets are positive integers, strictly increasing along a stream and never
reused, trimming included; offset 0 means "before the first entry". A consumer
is a durable name whose committed offset says how far it has processed.
"""

from __future__ import annotations

import importlib
import re
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from tether.closing import Closeable
from tether.errors import SettingsError

# Names portable to every engine (JetStream forbids dots, spaces and wildcards).
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

# URL scheme -> "module:factory"; the factory takes (url, name) and returns a Stream.
ENGINES: dict[str, str] = {
    "nats": "tether.stream.jetstream:JetStreamStream",
    "sqlite": "tether.stream.sqlite:SqliteStream",
}


def check_name(name: str, what: str) -> str:
    """``name`` if it is a portable stream or consumer name, else SettingsError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SettingsError(
            f"{what} name {name!r} is not allowed; use 1-64 letters, digits, '-' or '_'"
        )
    return name


def checked_batch(entries: Iterable[StreamEntry], unique: bool, what: str) -> list[StreamEntry]:
    """The entries of an append as a list; ValueError for a non-entry or a missing key."""
    batch = list(entries)
    for entry in batch:
        if not isinstance(entry, StreamEntry):
            raise ValueError(f"append takes StreamEntry objects, got {type(entry).__name__}")
        if unique and entry.key is None:
            raise ValueError(f"a unique append to {what} needs a key on every entry")
    return batch


def check_read(after: int, limit: int) -> None:
    if after < 0 or limit < 1:
        raise ValueError(f"read needs after >= 0 and limit >= 1, got {after}, {limit}")


@dataclass(frozen=True)
class StreamEntry:
    """One entry to append.

    ``key`` is the entry's identity for uniqueness (for the event log,
    ``"<serial>:<seq>"``); leave it ``None`` when the stream needs none, because a
    stream remembers every key it has seen for its whole life.
    """

    key: str | None
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.key is not None and (not isinstance(self.key, str) or not self.key):
            raise ValueError(
                f"a stream entry's key must be a non-empty string or None, got {self.key!r}"
            )
        if not isinstance(self.data, bytes):
            if not isinstance(self.data, bytearray | memoryview):
                raise ValueError(
                    f"a stream entry's data must be bytes, got {type(self.data).__name__}"
                )
            object.__setattr__(self, "data", bytes(self.data))
        headers = dict(self.headers)
        for name, value in headers.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise ValueError(f"stream entry headers map str to str, got {name!r}: {value!r}")
        object.__setattr__(self, "headers", headers)


@dataclass(frozen=True, kw_only=True)
class StoredEntry(StreamEntry):
    """An entry read back: its offset and when the engine appended it (Unix seconds)."""

    offset: int
    appended_at: float

    def entry(self) -> StreamEntry:
        """The entry as it was appended, e.g. to copy it to another stream."""
        return StreamEntry(self.key, self.data, self.headers)


class Stream(Closeable):
    """One named stream in an engine. Safe to share between threads.

    Invalid arguments (a negative offset, a limit below 1) raise ``ValueError``;
    engine failures raise :class:`tether.errors.EngineError`.
    """

    name: str

    @abstractmethod
    def append(self, entries: Iterable[StreamEntry], unique: bool = False) -> list[int | None]:
        """Append entries in order and return each one's offset.

        The entries are durable when this returns. With ``unique=True`` an entry
        whose key the stream already holds (or that an earlier entry of the same
        call holds) is not appended and its slot is ``None``; the check and the
        append are one atomic step, so two concurrent calls, from threads or
        processes, never both append a key. Every entry of a unique append must
        have a key. Keys of entries appended without ``unique`` count too.
        """

    @abstractmethod
    def read(self, after: int, limit: int) -> list[StoredEntry]:
        """Up to ``limit`` entries with offsets above ``after``, in offset order.

        ``after=0`` reads from the start (of what trimming left).
        """

    @abstractmethod
    def last_offset(self) -> int:
        """The offset of the newest entry ever appended; 0 for a new stream."""

    @abstractmethod
    def position(self, consumer: str) -> int:
        """The consumer's committed offset; 0 for a consumer that never committed."""

    @abstractmethod
    def commit(self, consumer: str, offset: int) -> None:
        """Record that ``consumer`` processed every entry up to ``offset``, durably.

        A commit never moves a consumer backwards: committing an offset below its
        position is a no-op, so a slow duplicate worker cannot undo progress.
        ``offset`` may not exceed :meth:`last_offset`.
        """

    @abstractmethod
    def reset(self, consumer: str, offset: int) -> None:
        """Move ``consumer`` to ``offset`` exactly, backwards included: starts a replay."""

    @abstractmethod
    def trim(self, before: float) -> int:
        """Remove entries appended before ``before`` (Unix seconds); return how many.

        Append times never decrease along a stream, so trimming removes a prefix.
        Offsets are not reused and keys stay remembered: a trimmed key is still
        refused by a unique append and reported by :meth:`contains`.
        """

    @abstractmethod
    def contains(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` the stream has ever held (trimmed entries included)."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine's resources; idempotent. The stream is unusable afterwards."""


def open_stream(url: str, name: str) -> Stream:
    """Open the stream ``name`` in the engine ``url`` names (created if absent).

    Raises :class:`SettingsError` for an unknown scheme or a bad name, and
    :class:`tether.errors.EngineError` when the engine cannot be reached.
    """
    scheme, sep, _ = url.partition(":")
    target = ENGINES.get(scheme) if sep else None
    if target is None:
        raise SettingsError(
            f"stream URL {url!r}: unknown scheme {scheme if sep else '(none)'!r}; "
            f"known schemes: {', '.join(sorted(ENGINES))} (e.g. sqlite:///.tether/stream.sqlite)"
        )
    check_name(name, "stream")
    module_name, _, attr = target.partition(":")
    factory: Callable[[str, str], Stream] = getattr(importlib.import_module(module_name), attr)
    return factory(url, name)
