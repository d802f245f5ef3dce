"""Work groups: several workers, in any processes, sharing one stream's entries.

A consumer (``Stream.position``/``commit``) is one reader's place in a stream.
A work group hands each entry to one worker at a time instead: ``claim`` leases
up to N entries no one else holds, ``ack`` says they are done. An entry whose
lease runs out before its ack (its worker died or stalled) is given again, to
whichever worker claims next, so every entry is worked on at least once and a
crash costs a repeat, never a loss. Work on a stream must therefore be
idempotent: the gate's is, because the event log refuses a (device, seq) twice.

Order is not promised across workers: entries come in offset order within a
claim, re-leased ones before new ones.

    from tether.stream.group import open_group

    with open_group(url, "raw", "gate", lease_seconds=30) as group:
        entries = group.claim(500)
        ...  # judge them
        group.ack(e.offset for e in entries)
"""

from __future__ import annotations

import importlib
from abc import abstractmethod
from collections.abc import Callable, Iterable

from tether.closing import Closeable
from tether.errors import SettingsError
from tether.stream.base import StoredEntry, check_name

# URL scheme -> "module:factory"; a factory takes (url, stream, group, lease_seconds).
ENGINES: dict[str, str] = {
    "sqlite": "tether.stream.group_sqlite:SqliteGroup",
    "nats": "tether.stream.group_jetstream:JetStreamGroup",
}


class WorkGroup(Closeable):
    """One worker's handle on a group sharing the entries of one stream."""

    stream: str
    group: str
    lease_seconds: float

    @abstractmethod
    def claim(self, limit: int) -> list[StoredEntry]:
        """Lease up to ``limit`` entries no other worker holds; [] when there are none.

        Entries whose lease ran out come first, then entries never claimed, each
        part in offset order. A new group starts at the beginning of the stream.
        """

    @abstractmethod
    def ack(self, offsets: Iterable[int]) -> None:
        """Mark entries done: they are never given out again. Acking twice is harmless."""

    @abstractmethod
    def pending(self) -> int:
        """Entries not acked yet, leased or not: the group's lag, for monitoring."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; leases not acked run out and are given again."""


def open_group(url: str, stream: str, group: str, lease_seconds: float = 30.0) -> WorkGroup:
    """Join the work group ``group`` on ``stream`` in the engine ``url`` names.

    Raises :class:`SettingsError` for an unknown scheme, a bad name or a lease
    that is not positive, and :class:`tether.errors.EngineError` when the engine
    cannot be reached.
    """
    scheme, sep, _ = url.partition(":")
    target = ENGINES.get(scheme) if sep else None
    if target is None:
        raise SettingsError(
            f"stream URL {url!r}: no work groups for scheme {scheme if sep else '(none)'!r}; "
            f"known schemes: {', '.join(sorted(ENGINES))}"
        )
    check_name(stream, "stream")
    check_name(group, "work group")
    if not lease_seconds > 0:
        raise SettingsError(f"work group {group!r}: lease_seconds must be > 0, got {lease_seconds}")
    module_name, _, attr = target.partition(":")
    factory: Callable[[str, str, str, float], WorkGroup] = getattr(
        importlib.import_module(module_name), attr
    )
    return factory(url, stream, group, lease_seconds)
