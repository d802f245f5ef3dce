"""After a run: what landed on the platform, against what the ledger says must have.

For every device: the records it holds (each once, by its dedupe key), their
type and body as the device made them, the clock correction the contract
prescribes (section 3), and the gaps, lost and pending, as the platform
reports them. For carts, also the shopping sessions: every session that
started ends exactly once in a final state, with every scan it made. Anything
else is a :class:`Mismatch`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

from tether.platform import Platform
from tether.projections.gaps import find_gaps
from tether.sim.ledger import DeviceBook, Ledger, Ranges, count_in, ranges
from tether.sim.wire import EARLIEST_BELIEVED_MS

DAY_MS = 86_400_000
FINAL = {"complete", "abandoned", "voided"}


@dataclass(frozen=True)
class Landed:
    """One event as the platform holds it."""

    key: str
    seq: int | None
    type: str
    body: dict[str, Any]
    device_ts: int
    arrival: int
    clock_corrected: bool


class PlatformView(Protocol):
    """How the check reads the platform."""

    def landed(self, serial: str) -> list[Landed]: ...

    def gaps(self, serial: str) -> tuple[Ranges, Ranges]: ...


class StoreView:
    """The platform's own stores, read as ``tether events`` reads them."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def landed(self, serial: str) -> list[Landed]:
        events = self.platform.telemetry.by_device(serial, 0, 1 << 62, limit=10_000_000)
        return [
            Landed(e.dedupe_key, e.seq, e.type, e.body, e.device_ts, e.arrival, e.clock_corrected)
            for e in events
        ]

    def gaps(self, serial: str) -> tuple[Ranges, Ranges]:
        state = self.platform.device_state.get(serial)
        found = find_gaps(
            self.platform.telemetry.seqs(serial), state.lowest_seq_held if state else None
        )
        return list(found.lost), list(found.pending)


@dataclass(frozen=True)
class Mismatch:
    serial: str
    device_class: str
    kind: str  # missing | unexpected | duplicate | body | type | clock | lost | pending | ...
    detail: str

    def __str__(self) -> str:
        return f"{self.serial} ({self.device_class}) {self.kind}: {self.detail}"


@dataclass
class DeviceResult:
    serial: str
    device_class: str
    site: str | None
    expected: int
    landed: int
    lost: Ranges
    pending: Ranges
    overwritten: int  # seqs the device overwrote that never reached a door
    undelivered: int  # records the device still held for sending when the run ended


@dataclass
class Comparison:
    devices: list[DeviceResult] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    sessions: Counter[str] = field(default_factory=Counter)  # cart sessions by final state

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def by_class(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for d in self.devices:
            row = out.setdefault(
                d.device_class,
                {"devices": 0, "expected": 0, "landed": 0, "with_lost": 0, "lost": 0, "pending": 0},
            )
            row["devices"] += 1
            row["expected"] += d.expected
            row["landed"] += d.landed
            row["with_lost"] += 1 if d.lost else 0
            row["lost"] += count_in(d.lost)
            row["pending"] += count_in(d.pending)
        return out


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: what the device sent, against what the platform read back."""
    return bool(json.loads(json.dumps(a)) == b)


def compare(ledger: Ledger, view: PlatformView, undelivered: dict[str, int]) -> Comparison:
    result = Comparison()
    for serial, book in sorted(ledger.books.items()):
        _device(book, view, undelivered.get(serial, 0), result)
    return result


def _device(book: DeviceBook, view: PlatformView, undelivered: int, result: Comparison) -> None:
    expected = book.expected()
    landed = view.landed(book.serial)
    lost, pending = view.gaps(book.serial)
    overwritten = sum(1 for seq in book.evicted if str(seq) not in book.delivered)
    result.devices.append(
        DeviceResult(
            book.serial,
            book.device_class,
            book.site,
            len(expected.records),
            len(landed),
            expected.lost,
            expected.pending,
            overwritten,
            undelivered,
        )
    )
    problems: list[tuple[str, str]] = []
    keys = Counter(e.key for e in landed)
    for key, n in keys.items():
        if n > 1:
            problems.append(("duplicate", f"{key} is stored {n} times"))
    missing = sorted(set(expected.records) - set(keys), key=_order)
    unexpected = sorted(set(keys) - set(expected.records), key=_order)
    if missing:
        problems.append(("missing", _some(missing, "reached a door but is not stored")))
    if unexpected:
        problems.append(("unexpected", _some(unexpected, "is stored but never reached a door")))
    for event in landed:
        record = expected.records.get(event.key)
        if record is None:
            continue
        if event.type != record.type:
            made = f"the device made a {record.type}"
            problems.append(("type", f"{event.key} is stored as a {event.type}, {made}"))
        elif not _same(record.body, event.body):
            problems.append(("body", f"{event.key}: made {record.body}, stored {event.body}"))
        should = (
            record.device_ts_ms is None
            or record.device_ts_ms < EARLIEST_BELIEVED_MS
            or record.device_ts_ms > event.arrival + DAY_MS
        )
        if event.clock_corrected != should:
            problems.append(
                (
                    "clock",
                    f"{event.key} (device time {record.device_ts_ms}) "
                    f"{'is' if event.clock_corrected else 'is not'} flagged clock_corrected",
                )
            )
    if lost != expected.lost:
        problems.append(("lost", f"expected lost {expected.lost}, the platform says {lost}"))
    if pending != expected.pending:
        problems.append(
            ("pending", f"expected pending {expected.pending}, the platform says {pending}")
        )
    unexplained = [s for a, b in expected.lost for s in range(a, b + 1) if s not in book.evicted]
    if unexplained:
        never = "count as lost but were never overwritten"
        problems.append(("simulator", _some(unexplained, never)))
    for key, code in sorted(book.refused.items()):
        problems.append(("refused", f"an honest record {key} was refused: {code}"))
    if undelivered:
        left = f"{undelivered} records were still on the device, unsent, at the end"
        problems.append(("undelivered", left))
    if book.device_class == "retail-cart":
        problems += _sessions(book, landed, result.sessions)
    result.mismatches += [Mismatch(book.serial, book.device_class, k, d) for k, d in problems]


def _sessions(book: DeviceBook, landed: list[Landed], tally: Counter[str]) -> list[tuple[str, str]]:
    """Every session that started ends once, finally, with all of its scans."""
    starts: Counter[str] = Counter()
    ends: dict[str, list[str]] = defaultdict(list)
    scans: Counter[str] = Counter()
    for event in landed:
        sid = event.body.get("session_id")
        if not isinstance(sid, str):
            continue
        if event.type == "session-start":
            starts[sid] += 1
        elif event.type == "session-end":
            ends[sid].append(str(event.body.get("outcome")))
        elif event.type == "scan":
            scans[sid] += 1
    made: Counter[str] = Counter(
        str(r.body.get("session_id")) for r in book.made.values() if r.type == "scan"
    )
    problems = []
    for sid in sorted(starts):
        outcomes = ends.get(sid, [])
        if len(outcomes) != 1 or outcomes[0] not in FINAL:
            problems.append(("session", f"{sid} ended {outcomes or 'never'}"))
        else:
            tally[outcomes[0]] += 1
        if scans[sid] != made[sid]:
            problems.append(("session", f"{sid} made {made[sid]} scans, {scans[sid]} stored"))
    for sid in sorted(set(scans) - set(starts)):
        problems.append(("session", f"{scans[sid]} scans stored for {sid}, which never started"))
    return problems


def _order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 62, key)


def _some(items: list[Any], what: str, shown: int = 8) -> str:
    listed = ", ".join(str(i) for i in items[:shown])
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    if all(isinstance(i, int) for i in items):
        listed = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges(items)[:shown])
    return f"{len(items)} {what}: {listed}{more}"
