"""Work groups: each entry to one worker at a time, again after a lease runs out.

Runs once per stream engine (``stream_url``); the multi-process test kills
workers with SIGKILL and counts that every entry was worked on and none is lost.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stream import group_workers
from tether.errors import EngineError, SettingsError
from tether.stream import Stream, StreamEntry, open_stream
from tether.stream.group import WorkGroup, open_group


@pytest.fixture
def url(stream_url: str) -> str:
    return stream_url


@pytest.fixture
def stream(url: str) -> Iterator[Stream]:
    with open_stream(url, "in") as s:
        yield s


def fill(stream: Stream, n: int, start: int = 0) -> None:
    stream.append([StreamEntry(f"k{i}", f"v{i}".encode()) for i in range(start, start + n)])


def join(url: str, lease: float = 30.0) -> WorkGroup:
    return open_group(url, "in", "workers", lease_seconds=lease)


def test_workers_claim_disjoint_entries_in_offset_order(url: str, stream: Stream) -> None:
    fill(stream, 10)
    with join(url) as a, join(url) as b:
        first, second = a.claim(4), b.claim(4)
        assert [e.offset for e in first] == [1, 2, 3, 4]
        assert [e.offset for e in second] == [5, 6, 7, 8]
        assert [(e.key, e.data) for e in second[:1]] == [("k4", b"v4")]
        assert [e.offset for e in a.claim(100)] == [9, 10]
        assert b.claim(100) == []
        assert a.pending() == 10


def test_acked_entries_are_never_given_again(url: str, stream: Stream) -> None:
    fill(stream, 6)
    with join(url, lease=0.2) as a:
        entries = a.claim(6)
        a.ack(e.offset for e in entries if e.offset != 3)
        a.ack([1, 1, 2])  # twice is harmless
        assert a.pending() == 1
        time.sleep(0.3)
        assert [e.offset for e in a.claim(10)] == [3]
        a.ack([3])
        assert a.pending() == 0
        fill(stream, 2, start=6)
        assert [e.offset for e in a.claim(10)] == [7, 8]
        assert a.pending() == 2


def test_a_lease_that_runs_out_goes_to_another_worker(url: str, stream: Stream) -> None:
    fill(stream, 5)
    with join(url, lease=0.3) as a, join(url, lease=0.3) as b:
        held = a.claim(3)  # a "dies" holding 1..3
        assert [e.offset for e in b.claim(10)] == [4, 5]
        b.ack([4, 5])
        assert b.claim(10) == []  # a's leases are still live
        assert b.pending() == 3
        time.sleep(0.4)
        again = b.claim(10)
        assert [e.offset for e in again] == [e.offset for e in held]
        b.ack([1, 2, 3])
        assert a.claim(10) == [] and a.pending() == 0


def test_groups_are_independent_and_join_from_the_start(url: str, stream: Stream) -> None:
    fill(stream, 3)
    with join(url) as a, open_group(url, "in", "auditors") as other:
        a.ack(e.offset for e in a.claim(3))
        assert [e.offset for e in other.claim(10)] == [1, 2, 3]
    with join(url) as late:  # the group remembers its progress
        assert late.claim(10) == []


def test_entries_trimmed_while_leased_do_not_hold_the_group(url: str, stream: Stream) -> None:
    fill(stream, 4)
    with join(url, lease=0.2) as a:
        a.claim(2)
        time.sleep(0.3)
        assert stream.trim(time.time() + 1) == 4
        assert a.claim(10) == []
        assert a.pending() == 0


def test_bad_arguments_are_typed_errors(url: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no work groups for scheme 'bogus'"):
        open_group("bogus://x", "in", "g")
    with pytest.raises(SettingsError, match="work group name"):
        open_group(url, "in", "no spaces")
    with pytest.raises(SettingsError, match="lease_seconds must be > 0"):
        open_group(url, "in", "g", lease_seconds=0)
    group = open_group(url, "in", "g")
    with pytest.raises(ValueError, match="limit >= 1"):
        group.claim(0)
    group.close()
    with pytest.raises(EngineError, match="closed"):
        group.claim(1)


def test_workers_killed_at_random_lose_nothing(url: str, stream: Stream) -> None:
    """Three copier processes; one is SIGKILLed and replaced, 8 times, while entries arrive."""
    ctx = multiprocessing.get_context("spawn")

    def start() -> multiprocessing.process.BaseProcess:
        p = ctx.Process(target=group_workers.work, args=(url, 1.0, 0.03), daemon=True)
        p.start()
        return p

    procs = [start() for _ in range(3)]
    rng = random.Random(7)
    n = 0
    with open_stream(url, "out") as out:
        for _ in range(8):
            fill(stream, 250, start=n)
            n += 250
            time.sleep(rng.uniform(0.1, 0.5))
            victim = rng.randrange(len(procs))
            os.kill(procs[victim].pid or 0, signal.SIGKILL)
            procs[victim].join()
            procs[victim] = start()
        deadline = time.monotonic() + 120
        while out.last_offset() < n and time.monotonic() < deadline:
            time.sleep(0.1)
        copied = out.last_offset()
        keys = {e.key for e in out.read(0, 2 * n)}
    with open_group(url, "in", "copiers") as probe:
        wait = time.monotonic() + 30  # the last acks follow the last copies
        while probe.pending() and time.monotonic() < wait:
            time.sleep(0.1)
        left = probe.pending()
    for p in procs:
        os.kill(p.pid or 0, signal.SIGKILL)
        p.join()
    assert copied == n  # the unique append kept out every repeat
    assert keys == {f"k{i}" for i in range(n)}
    assert left == 0
