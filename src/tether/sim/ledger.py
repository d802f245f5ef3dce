"""The ground truth of a simulated run, and what the platform should hold because of it.

Devices write here what they made, what reached a front door (an HTTPS request
the door answered, an MQTT publish the broker acknowledged), what they
overwrote in flash and what they dropped. From that alone, never from what the
platform answered, :meth:`DeviceBook.expected` says what the platform must hold
for the device when the run is over: every record that reached a door, once,
filed as the device made it; and the gaps the platform can know of, lost (below
the ``lowest_seq_held`` of the newest hello that reached it) or pending.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from tether.sim.wire import Record

Ranges = list[tuple[int, int]]


def ranges(values: Iterable[int]) -> Ranges:
    """Sorted, distinct integers as inclusive ``(first, last)`` runs."""
    out: Ranges = []
    for value in sorted(set(values)):
        if out and value == out[-1][1] + 1:
            out[-1] = (out[-1][0], value)
        else:
            out.append((value, value))
    return out


def count_in(runs: Ranges) -> int:
    return sum(last - first + 1 for first, last in runs)


@dataclass(frozen=True)
class Expected:
    """What the platform must hold for one device after the run."""

    records: dict[str, Record]  # by dedupe key
    lost: Ranges  # seqs the platform knows the device overwrote
    pending: Ranges  # seqs the platform still waits for


@dataclass
class DeviceBook:
    serial: str
    device_class: str
    site: str | None = None
    made: dict[str, Record] = field(default_factory=dict)
    delivered: set[str] = field(default_factory=set)
    delivered_at: dict[str, float] = field(default_factory=dict)  # first time, simulated
    evicted: set[int] = field(default_factory=set)
    discarded: set[str] = field(default_factory=set)
    # Honest records a door refused (with the code): each is an anomaly to report.
    refused: dict[str, str] = field(default_factory=dict)
    # (seq, lowest_seq_held) of the newest hello that reached a door.
    newest_hello: tuple[int, int] | None = None
    # A cart whose weight platform reads this factor of the true weight (honest, but wrong).
    miscalibrated: float | None = None

    def expected(self) -> Expected:
        records = {key: self.made[key] for key in self.delivered}
        seqs = {r.seq for r in records.values() if r.seq is not None}
        if not seqs:
            return Expected(records, [], [])
        lowest = self.newest_hello[1] if self.newest_hello is not None else None
        top = max(seqs)
        missing = [s for s in range(1, top + 1) if s not in seqs]
        if lowest is not None and lowest > top + 1:
            missing += range(top + 1, lowest)  # overwritten before any of it arrived
        lost = [s for s in missing if lowest is not None and s < lowest]
        pending = [s for s in missing if lowest is None or s >= lowest]
        return Expected(records, ranges(lost), ranges(pending))


# Records a device makes for the exchange itself, not as data about the world.
_PROTOCOL = frozenset({"hello", "bond"})


def delays(books: Iterable[DeviceBook], since: float) -> list[float]:
    """Seconds from making to first delivery of data records made from ``since`` on, sorted."""
    out = []
    for book in books:
        for key, at in book.delivered_at.items():
            record = book.made[key]
            if record.made_at >= since and record.type not in _PROTOCOL:
                out.append(at - record.made_at)
    return sorted(out)


class Ledger:
    """Every device's book, and counters of what the world did (``counts``)."""

    def __init__(self) -> None:
        self.books: dict[str, DeviceBook] = {}
        self.counts: Counter[str] = Counter()

    def device(self, serial: str, device_class: str, site: str | None = None) -> DeviceBook:
        book = self.books.get(serial)
        if book is None:
            book = self.books[serial] = DeviceBook(serial, device_class, site)
        return book

    def made(self, serial: str, record: Record) -> None:
        self.books[serial].made[record.key] = record
        self.counts[f"{self.books[serial].device_class}.records"] += 1

    def delivered(self, serial: str, key: str, at: float) -> None:
        book = self.books[serial]
        book.delivered.add(key)
        book.delivered_at.setdefault(key, at)
        record = book.made[key]
        if record.type == "hello" and record.seq is not None:
            lowest = record.body.get("lowest_seq_held")
            if isinstance(lowest, int) and (
                book.newest_hello is None or record.seq > book.newest_hello[0]
            ):
                book.newest_hello = (record.seq, lowest)

    def evicted(self, serial: str, seq: int) -> None:
        self.books[serial].evicted.add(seq)

    def discarded(self, serial: str, key: str) -> None:
        self.books[serial].discarded.add(key)

    def refused(self, serial: str, key: str, code: str) -> None:
        self.books[serial].refused[key] = code
        self.counts["refused." + code] += 1

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n
