"""Replay: a gate reads ``raw`` through its consumer and appends what it accepts to ``events``.

Resetting the gate's consumer replays the raw records; the unique event log
refuses what was accepted before, so a replay after a gate fix adds exactly the
newly accepted records and duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.stream.conftest import OpenStream
from tether.stream import Stream, StreamEntry

Rule = Callable[[bytes], bool]


def run_gate(raw: Stream, events: Stream, dead: Stream, accept: Rule) -> int:
    """Process raw records from the gate's position to the end; return how many were new."""
    new = 0
    while batch := raw.read(raw.position("gate"), 4):
        good = [e.entry() for e in batch if accept(e.data)]
        bad = [StreamEntry(None, e.data, {"code": "schema", "raw": str(e.offset)}) for e in batch]
        new += sum(slot is not None for slot in events.append(good, unique=True))
        dead.append([d for d, e in zip(bad, batch, strict=True) if not accept(e.data)])
        raw.commit("gate", batch[-1].offset)
    return new


def test_replay_with_a_fixed_gate_adds_exactly_the_newly_accepted(open_named: OpenStream) -> None:
    raw, events, dead = open_named("raw"), open_named("events"), open_named("dead-letter")
    records = [(f"SN{n % 3}:{n}", b"ok" if n % 4 else b"odd") for n in range(20)]
    # Front doors append every received record, redeliveries included.
    raw.append([StreamEntry(key, data) for key, data in records])
    raw.append([StreamEntry(key, data) for key, data in records[:5]])

    def buggy(data: bytes) -> bool:
        return data == b"ok"

    assert run_gate(raw, events, dead, buggy) == 15
    assert raw.position("gate") == raw.last_offset() == 25
    assert dead.last_offset() == 5 + 2  # rejects of the redelivered ones too

    # Replaying with the same gate changes nothing.
    raw.reset("gate", 0)
    assert run_gate(raw, events, dead, buggy) == 0
    # The fixed gate accepts the odd records too: exactly those five are added.
    raw.reset("gate", 0)
    assert run_gate(raw, events, dead, lambda data: True) == 5
    keys = [e.key for e in events.read(0, 100)]
    assert sorted(k or "" for k in keys) == sorted(key for key, _ in records)
    assert len(keys) == len(set(keys)) == 20
