"""What only the JetStream engine has: its URL, a server that goes away, keys in subjects,
an append that fails half way, and a replicated cluster."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import nats
import pytest

from tests.stream.conftest import drop_prefix
from tests.stream.test_conformance import entries, read_all
from tether.errors import EngineError, SettingsError
from tether.stream import Stream, StreamEntry, natslink, open_stream
from tether.stream.jetstream import JetStreamStream
from tether.stream.natslink import parse_url
from tether.testing import NatsCluster, NatsInstance, free_port

pytestmark = pytest.mark.engine("nats")


@pytest.fixture
def url(nats: NatsInstance) -> Iterator[str]:
    prefix = f"j{uuid.uuid4().hex[:12]}"
    yield f"{nats.url}/?prefix={prefix}"
    drop_prefix(nats.url, prefix)


def publish(server_url: str, subject: str, data: bytes) -> None:
    """Publish one message with a plain client, as another (crashed) writer would have."""

    async def run() -> None:
        nc = await nats.connect(server_url)
        try:
            await nc.jetstream().publish(subject, data)
        finally:
            await nc.close()

    asyncio.run(run())


def eventually(check: Any, seconds: float = 15.0) -> Any:
    """``check()``'s first answer that raises no EngineError within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except EngineError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# The URL ----------------------------------------------------------------------------------


def test_url_defaults_and_a_cluster() -> None:
    one = parse_url("nats://127.0.0.1")
    assert one.servers == ("nats://127.0.0.1:4222",)
    assert (one.prefix, one.replicas, one.timeout) == ("tether", 1, 5.0)
    three = parse_url("nats://me:secret@h1:4222,h2:4223,h3/?replicas=3&prefix=acme&timeout=2.5")
    assert three.servers == (
        "nats://me:secret@h1:4222",
        "nats://me:secret@h2:4223",
        "nats://me:secret@h3:4222",
    )
    assert three.display == "h1:4222,h2:4223,h3:4222"  # no credentials in messages
    assert (three.prefix, three.replicas, three.timeout) == ("acme", 3, 2.5)
    listed = parse_url("nats://127.0.0.1:1,nats://127.0.0.1:2/")
    assert listed.servers == ("nats://127.0.0.1:1", "nats://127.0.0.1:2")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("nats://h:4222/streams", "has no path"),
        ("nats:///?prefix=x", "names no server"),
        ("nats:/h", "not a NATS URL"),
        ("nats://h/x,k", "has no path"),
        ("nats://h,,k", "empty server"),
        ("nats://h:port", "bad server"),
        ("nats://h/?prefix=a_b", "prefix='a_b'"),
        ("nats://h/?prefix=", "prefix=''"),
        ("nats://h/?replicas=0", "replicas='0'"),
        ("nats://h/?replicas=three", "replicas='three'"),
        ("nats://h/?timeout=-1", "timeout='-1'"),
        ("nats://h/?timeout=soon", "timeout='soon'"),
        ("nats://h/?stream=raw", "unknown parameter 'stream'"),
        ("nats://h/?prefix=a&prefix=b", "given twice"),
    ],
)
def test_bad_urls_are_settings_errors(url: str, match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        open_stream(url, "raw")


# A server that is not there ---------------------------------------------------------------


def test_no_server_is_a_clear_error_and_quick() -> None:
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(EngineError, match=r"cannot reach NATS at 127\.0\.0\.1:\d+: is nats-server"):
        open_stream(f"nats://127.0.0.1:{port}/?prefix=x", "raw")
    assert time.monotonic() - t0 < 10
    assert not natslink._links  # nothing left running


@pytest.mark.engine("nats")
def test_a_server_without_jetstream_is_named() -> None:
    with (
        NatsInstance(jetstream=False) as server,
        pytest.raises(EngineError, match=r"JetStream is not enabled; start nats-server with -js"),
    ):
        open_stream(f"{server.url}/?prefix=x", "raw")


@pytest.mark.engine("nats")
def test_restarts_keep_entries_keys_and_offsets_and_outages_are_engine_errors() -> None:
    with NatsInstance() as server:
        url = f"{server.url}/?prefix=r&timeout=1"
        stream = open_stream(url, "events")
        try:
            assert stream.append(entries("a", "b", "c"), unique=True) == [1, 2, 3]
            stream.commit("gate", 2)
            assert [e.key for e in stream.read(0, 2)] == ["a", "b"]

            server.restart()  # a clean stop and start
            assert eventually(lambda: stream.append(entries("c", "d"), unique=True)) == [None, 4]
            assert stream.position("gate") == 2
            # The reader's consumer lived in the old server's memory; reading goes on.
            assert [e.key for e in stream.read(2, 10)] == ["c", "d"]

            server.kill()  # SIGKILL: nothing acknowledged is lost
            with pytest.raises(EngineError, match=r"NATS at 127\.0\.0\.1"):
                stream.append(entries("e"), unique=True)
            with pytest.raises(EngineError, match=r"NATS at 127\.0\.0\.1"):
                stream.position("gate")
            server.restart()
            eventually(stream.last_offset)
            # The append that failed while the server was down may have claimed "e":
            # the key is still free, and "e" lands once.
            assert stream.append(entries("e", "a"), unique=True) == [5, None]
            stream.commit("gate", 5)
        finally:
            stream.close()
        with open_stream(url, "events") as again:
            assert [e.key for e in read_all(again)] == ["a", "b", "c", "d", "e"]
            assert again.position("gate") == 5
            assert again.contains(["a", "e", "z"]) == {"a", "e"}
    assert not natslink._links


# Keys, connections and consumers ----------------------------------------------------------


def test_keys_with_any_characters(url: str) -> None:
    keys = ["a.b", "x y", "ü✓", "=41", "*", ">", "SN-1:42", "a/b\\c", "%20", "=", "tab\there"]
    with open_stream(url, "events") as stream:
        assert stream.append([StreamEntry(k, k.encode()) for k in keys], unique=True) == list(
            range(1, len(keys) + 1)
        )
        assert [e.key for e in stream.read(0, 100)] == keys
        assert stream.append([StreamEntry(k, b"") for k in keys], unique=True) == [None] * len(keys)
        assert stream.contains([*keys, "A", "=42"]) == set(keys)
        assert stream.trim(time.time() + 1) == len(keys)
        assert stream.contains(keys) == set(keys)
        assert stream.append([StreamEntry(k, b"") for k in keys], unique=True) == [None] * len(keys)


def test_streams_of_one_url_share_one_connection(url: str) -> None:
    raw, events = open_stream(url, "raw"), open_stream(url, "events")
    assert len(natslink._links) == 1
    raw.close()
    assert events.append(entries("a")) == [1]
    events.close()
    assert not natslink._links


def test_commits_from_many_threads_keep_the_highest(url: str) -> None:
    with open_stream(url, "raw") as stream:
        stream.append(entries(*[None] * 200))
        start = threading.Barrier(4)

        def work(n: int) -> None:
            start.wait()
            for offset in range(n, 201, 4):
                stream.commit("gate", offset)
                stream.commit("gate", offset // 2)  # a stale worker

        threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert stream.position("gate") == 200


def test_another_writers_entry_is_read_with_its_subject(url: str, nats: NatsInstance) -> None:
    """Entries are plain JetStream messages: the layout the module documents."""
    prefix = parse_url(url).prefix
    with open_stream(url, "raw") as stream:
        publish(nats.url, f"{prefix}.raw.n", b"from outside")
        [got] = stream.read(0, 10)
        assert (got.key, got.data, dict(got.headers), got.offset) == (None, b"from outside", {}, 1)


# An append that fails half way ------------------------------------------------------------


class Interrupted(EngineError):
    pass


def fail_round(monkeypatch: pytest.MonkeyPatch, number: int, after_sending: bool) -> None:
    """Make the ``number``-th round of requests fail, before or after it reached the server."""
    real = natslink.Link.requests
    rounds = {"n": 0}

    async def requests(self: Any, batch: Any) -> Any:
        rounds["n"] += 1
        if rounds["n"] != number:
            return await real(self, batch)
        if after_sending:
            await real(self, batch)
        raise Interrupted("the connection dropped")

    monkeypatch.setattr(natslink.Link, "requests", requests)


def test_claimed_but_never_published_then_retried(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_stream(url, "events") as stream:
        batch = entries("a", "b", "c")
        fail_round(monkeypatch, 2, after_sending=False)  # claims made, entries never sent
        with pytest.raises(Interrupted):
            stream.append(batch, unique=True)
        monkeypatch.undo()
        assert stream.contains(["a", "b", "c"]) == set()  # claims alone hold nothing
        assert stream.append(batch, unique=True) == [1, 2, 3]  # the retry loses nothing
        assert stream.append(batch, unique=True) == [None, None, None]
        assert [e.key for e in read_all(stream)] == ["a", "b", "c"]


def test_published_but_never_answered_then_retried(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_stream(url, "events") as stream:
        batch = entries("a", "b", "c")
        fail_round(monkeypatch, 2, after_sending=True)  # entries landed, the answer was lost
        with pytest.raises(Interrupted):
            stream.append(batch, unique=True)
        monkeypatch.undo()
        assert stream.append(batch, unique=True) == [None, None, None]  # they are held
        assert stream.append(entries("c", "d"), unique=True) == [None, 4]
        assert [e.key for e in read_all(stream)] == ["a", "b", "c", "d"]


def test_a_key_trimmed_while_its_claim_is_checked_is_refused(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rare path: a trim marks the key between the two reads of a unique append."""
    with open_stream(url, "events") as stream:
        assert stream.append(entries("a", "b")) == [1, 2]
        real = JetStreamStream._held_in_stream

        async def trimmed_meanwhile(self: Any, link: Any, keys: list[str]) -> list[bool]:
            # A trimmer marks "a" and purges its entry right after this append read "c".
            await self._mark_trimmed(link, {"a": 1})
            await link.api(f"STREAM.PURGE.{self._js_name}", {"seq": 2})
            return await real(self, link, keys)

        monkeypatch.setattr(JetStreamStream, "_held_in_stream", trimmed_meanwhile)
        assert stream.append(entries("a", "c"), unique=True) == [None, 4]
        monkeypatch.undo()
        assert [(e.key, e.offset) for e in read_all(stream)] == [("b", 2), ("c", 4)]
        assert stream.last_offset() == 4  # offset 3 was taken and given back: a gap
        assert stream.append(entries("a", "d"), unique=True) == [None, 5]


def test_a_stream_deleted_under_us_is_an_engine_error(url: str, nats: NatsInstance) -> None:
    stream: Stream = open_stream(url, "events")
    try:
        stream.append(entries("a"))
        drop_prefix(nats.url, parse_url(url).prefix)
        with pytest.raises(EngineError, match=r"the stream was deleted"):
            stream.append(entries("b"))
        with pytest.raises(EngineError, match="stream not found"):
            stream.last_offset()
    finally:
        stream.close()
    with open_stream(url, "events") as again:  # opening makes it again, empty
        assert again.append(entries("a"), unique=True) == [1]


# A replicated cluster ---------------------------------------------------------------------


@pytest.mark.engine("nats")
def test_a_three_node_cluster_keeps_going_without_one_node() -> None:
    with NatsCluster(3) as cluster:
        url = f"{cluster.url}/?replicas=3&prefix=c&timeout=3"
        with open_stream(url, "events") as stream:
            assert stream.append(entries("a", "b"), unique=True) == [1, 2]
            stream.commit("gate", 1)
            # Kill the node the client talks to: it fails over, and the streams and
            # buckets elect new leaders where they led (several seconds).
            connected = stream._link._nc.connected_url.port  # type: ignore[attr-defined]
            [node] = [n for n in cluster.nodes if n.port == connected]
            node.kill()
            slots = eventually(lambda: stream.append(entries("b", "c"), unique=True), 30)
            assert slots == [None, 3]
            assert eventually(lambda: [e.key for e in read_all(stream)], 30) == ["a", "b", "c"]
            assert eventually(lambda: stream.position("gate"), 30) == 1
        survivor = next(n for n in cluster.nodes if n is not node)
        assert replicas(survivor.url, ["c-events", "KV_c_keys", "KV_c_consumers"]) == [3] * 3


def replicas(server_url: str, names: list[str]) -> list[int]:
    async def run() -> list[int]:
        nc = await nats.connect(server_url)
        try:
            js = nc.jetstream()
            return [(await js.stream_info(name)).config.num_replicas or 0 for name in names]
        finally:
            await nc.close()

    return asyncio.run(run())
