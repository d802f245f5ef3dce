"""What every stream engine must do: the port's contract, method by method."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from tests.stream import workers
from tests.stream.conftest import OpenStream
from tether.errors import EngineError, SettingsError
from tether.stream import StoredEntry, Stream, StreamEntry, open_stream


def entries(*keys: str | None, prefix: bytes = b"") -> list[StreamEntry]:
    return [StreamEntry(k, prefix + (k or "-").encode(), {"k": k or ""}) for k in keys]


def read_all(stream: Stream, after: int = 0, page: int = 7) -> list[StoredEntry]:
    out: list[StoredEntry] = []
    while batch := stream.read(after, page):
        out.extend(batch)
        after = batch[-1].offset
    return out


def test_append_then_read_in_order(stream: Stream) -> None:
    assert stream.last_offset() == 0
    assert stream.read(0, 10) == []
    assert stream.append([]) == []
    offsets = stream.append(entries("a", None, "c"))
    assert offsets == [1, 2, 3]
    assert stream.append(entries("d")) == [4]
    got = stream.read(0, 10)
    assert [e.offset for e in got] == [1, 2, 3, 4]
    assert [(e.key, e.data, dict(e.headers)) for e in got] == [
        ("a", b"a", {"k": "a"}),
        (None, b"-", {"k": ""}),
        ("c", b"c", {"k": "c"}),
        ("d", b"d", {"k": "d"}),
    ]
    assert got[0].entry() == StreamEntry("a", b"a", {"k": "a"})
    assert all(0 < e.appended_at <= time.time() for e in got)
    assert stream.last_offset() == 4


def test_read_pages_after_an_offset(stream: Stream) -> None:
    stream.append(entries(*[f"k{i}" for i in range(10)]))
    assert [e.offset for e in stream.read(3, 4)] == [4, 5, 6, 7]
    assert [e.offset for e in stream.read(8, 100)] == [9, 10]
    assert stream.read(10, 5) == []
    assert [e.key for e in read_all(stream, page=3)] == [f"k{i}" for i in range(10)]
    with pytest.raises(ValueError):
        stream.read(-1, 5)
    with pytest.raises(ValueError):
        stream.read(0, 0)


def test_binary_data_and_headers_round_trip(stream: Stream) -> None:
    blob = bytes(range(256)) * 4
    stream.append([StreamEntry(None, blob, {"code": "bad_sig", "détail": "ünïcode ✓"})])
    [got] = stream.read(0, 1)
    assert got.data == blob
    assert dict(got.headers) == {"code": "bad_sig", "détail": "ünïcode ✓"}


def test_unique_append_refuses_known_keys(stream: Stream) -> None:
    assert stream.append(entries("a", "b"), unique=True) == [1, 2]
    # Known keys and repeats within the call get None; new keys get the next offsets.
    assert stream.append(entries("b", "c", "c", "a", "d"), unique=True) == [None, 3, None, None, 4]
    assert [e.key for e in read_all(stream)] == ["a", "b", "c", "d"]
    # Keys of plain appends count for later unique appends too.
    assert stream.append(entries("e", "e")) == [5, 6]
    assert stream.append(entries("e"), unique=True) == [None]
    with pytest.raises(ValueError, match="needs a key"):
        stream.append(entries(None), unique=True)
    assert stream.last_offset() == 6


def test_contains(stream: Stream) -> None:
    assert stream.contains(["x"]) == set()
    stream.append(entries("a", "b", None))
    assert stream.contains(["a", "b", "z"]) == {"a", "b"}
    assert stream.contains([]) == set()
    many = [f"k{i}" for i in range(1500)]
    stream.append(entries(*many[::2]), unique=True)
    assert stream.contains(many) == set(many[::2])


def test_streams_in_one_engine_are_independent(open_named: OpenStream) -> None:
    raw, events = open_named("raw"), open_named("events")
    assert raw.append(entries("a", "b")) == [1, 2]
    assert events.append(entries("a"), unique=True) == [1]
    assert raw.contains(["a", "b"]) == {"a", "b"}
    assert events.contains(["a", "b"]) == {"a"}
    raw.commit("gate", 2)
    assert events.position("gate") == 0
    assert (raw.name, events.name) == ("raw", "events")


def test_consumer_offsets_move_forward_only(stream: Stream) -> None:
    stream.append(entries(*"abcdef"))
    assert stream.position("gate") == 0
    stream.commit("gate", 4)
    assert stream.position("gate") == 4
    stream.commit("gate", 2)  # a stale worker's commit does not undo progress
    assert stream.position("gate") == 4
    stream.commit("gate", 6)
    assert stream.position("gate") == 6
    assert stream.position("projector") == 0
    with pytest.raises(ValueError, match="outside"):
        stream.commit("gate", 7)
    with pytest.raises(ValueError):
        stream.commit("gate", -1)
    with pytest.raises(SettingsError, match="consumer name"):
        stream.commit("bad name", 1)


def test_reset_starts_a_replay(stream: Stream) -> None:
    stream.append(entries(*"abcdef"))
    stream.commit("gate", 6)
    stream.reset("gate", 2)
    assert stream.position("gate") == 2
    replay = stream.read(stream.position("gate"), 100)
    assert [e.key for e in replay] == ["c", "d", "e", "f"]
    stream.reset("fresh", 0)
    assert stream.position("fresh") == 0
    with pytest.raises(ValueError):
        stream.reset("gate", 99)


def test_trim_removes_a_prefix_and_keeps_uniqueness(stream: Stream) -> None:
    stream.append(entries("a", "b", "c"), unique=True)
    time.sleep(0.02)
    cut = time.time()
    time.sleep(0.02)
    stream.append(entries("d"), unique=True)
    stream.commit("gate", 2)
    assert stream.trim(cut) == 3
    assert stream.trim(cut) == 0
    assert [e.offset for e in read_all(stream)] == [4]
    # Offsets are not reused, trimmed keys stay refused, consumers keep their place.
    assert stream.last_offset() == 4
    assert stream.append(entries("a", "e"), unique=True) == [None, 5]
    assert stream.contains(["a", "b", "e"]) == {"a", "b", "e"}
    assert stream.position("gate") == 2
    assert [e.key for e in stream.read(stream.position("gate"), 10)] == ["d", "e"]
    assert stream.trim(time.time() + 1) == 2
    assert stream.read(0, 10) == []
    assert stream.last_offset() == 5


def test_durable_across_close_and_reopen(stream_url: str) -> None:
    with open_stream(stream_url, "events") as stream:
        stream.append(entries("a", "b"), unique=True)
        stream.commit("gate", 1)
    with open_stream(stream_url, "events") as stream:
        assert [e.key for e in stream.read(0, 10)] == ["a", "b"]
        assert stream.position("gate") == 1
        assert stream.append(entries("b", "c"), unique=True) == [None, 3]


def test_a_closed_stream_says_so(stream_url: str) -> None:
    stream = open_stream(stream_url, "events")
    stream.close()
    stream.close()  # idempotent
    with pytest.raises(EngineError, match="closed"):
        stream.append(entries("a"))
    with pytest.raises(EngineError, match="closed"):
        stream.read(0, 1)


@pytest.mark.parametrize("name", ["", "a.b", "with space", "x" * 65, "raw>"])
def test_bad_stream_names(stream_url: str, name: str) -> None:
    with pytest.raises(SettingsError, match="stream name"):
        open_stream(stream_url, name)


@pytest.mark.parametrize("shared", [True, False], ids=["one-object", "one-object-each"])
def test_unique_under_concurrent_threads(open_named: OpenStream, shared: bool) -> None:
    keys = [f"SN{i % 50}:{i}" for i in range(1000)]
    first = open_named("events")
    streams = [first, first if shared else open_named("events")]
    results: list[list[int | None]] = [[], []]
    start = threading.Barrier(2)

    def run(n: int) -> None:
        order = keys if n == 0 else keys[::-1]
        start.wait()
        for i in range(0, len(order), 25):
            results[n].extend(streams[n].append(entries(*order[i : i + 25]), unique=True))

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    appended = [slot for slots in results for slot in slots if slot is not None]
    assert sorted(appended) == list(range(1, len(keys) + 1))
    stored = read_all(first, page=200)
    assert sorted(e.key or "" for e in stored) == sorted(keys)


def test_unique_under_concurrent_processes(stream_url: str) -> None:
    keys = [f"SN{i % 40}:{i}" for i in range(1200)]
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=workers.append_keys,
            args=(stream_url, "events", order, batch, start, out),
        )
        for order, batch in ((keys, 20), (keys[::-1], 30))
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    assert not [r for r in results if isinstance(r, str)], results
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    appended = [slot for slots in results for slot in slots if slot is not None]
    assert sorted(appended) == list(range(1, len(keys) + 1))
    assert sum(len(slots) for slots in results) == 2 * len(keys)
    with open_stream(stream_url, "events") as stream:
        stored = read_all(stream, page=500)
    assert sorted(e.key or "" for e in stored) == sorted(keys)
    assert all(e.data == (e.key or "").encode() for e in stored)


def test_batches_are_fast(stream: Stream, stream_url: str) -> None:
    """10,000 entries in batches of 500, unique: about a second on any engine.

    The embedded engine is well under; JetStream pipelines each batch (two round
    trips) but pays a NATS client's per-message cost in Python, and gets more room.
    """
    bound = 2.0 if stream_url.startswith("sqlite:") else 4.0
    payload = b"x" * 300
    t0 = time.perf_counter()
    for b in range(20):
        batch = [StreamEntry(f"SN{b}:{i}", payload) for i in range(500)]
        assert None not in stream.append(batch, unique=True)
    elapsed = time.perf_counter() - t0
    assert stream.last_offset() == 10_000
    assert elapsed < bound, f"10,000 appends took {elapsed:.2f} s"
