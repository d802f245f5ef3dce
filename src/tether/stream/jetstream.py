"""The production stream engine: named streams in NATS JetStream.

What lives where, for prefix ``P`` and stream ``S``:

- JetStream stream ``P-S`` (file storage) holds the entries on subjects
  ``P.S.k.<key>`` (keyed) and ``P.S.n`` (no key). Offset = stream sequence: it
  starts at 1, increases and survives purges. The key is spelled in the subject
  with every byte outside ``[A-Za-z0-9_-]`` written as ``=XX``; the entry's headers
  travel as JSON in the ``Tether-Headers`` message header; the append time is the
  server's timestamp for the message.
- KV bucket ``P_keys``, key ``S.<key>``: the stream's key memory. The value is
  ``c`` (claimed: the stream is the authority on whether the entry landed) or
  ``t<sequence>`` (held once; its entry has been trimmed).
- KV bucket ``P_consumers``, key ``S.<consumer>``: the committed offset, in
  decimal. ``commit`` is a compare-and-set loop on the key's revision, so it only
  moves forward whatever other processes do; ``reset`` writes unconditionally.

Uniqueness. Two facts are atomic on the server, and the scheme rests on them:
creating a KV key (a publish with ``Nats-Expected-Last-Subject-Sequence: 0``
fails if the key exists), and publishing an entry with the same header on its key
subject (fails while the stream holds an entry with that key). Every append that
carries a key first *claims* it (creates ``c`` in the key memory; a key already
there is fine), then publishes. So a key absent from the key memory was never
published, and trimming writes ``t<sequence>`` over the claims of the keys it
removes before it purges. A unique append then:

1. claims each key. A key it creates was never held: it publishes the entry
   with the expectation, which only another writer racing for the same key can
   make fail (that writer then holds it: the slot is ``None``).
2. For a key that was already claimed it reads the key memory: ``t`` means held;
   ``c`` means held if the stream has an entry on the key's subject. If not, the
   claim is a writer's that has not published yet or never will (it crashed,
   timed out or lost its connection between claim and publish), and this append
   publishes the entry itself with the expectation; of two such writers exactly
   one wins. Afterwards it reads the key memory once more: if a trim marked the
   key meanwhile with an older sequence, the key was held (its entry trimmed
   between the two reads) and the new entry is deleted again and reported as
   ``None``. Only this rare path can leave a gap in the offsets.

An append that fails half way (timeout, lost connection, crash) can leave claims
without entries and entries whose append call raised; retrying the same entries
converges: each key ends up held exactly once, and an entry that did land is
answered ``None`` by the retry (it is in the stream; the retry cannot know it
was its own). Plain appends (``unique=False``) claim too but publish without the
expectation, so a key may be appended several times; a later unique append
refuses it.

Entries of one append are published back to back on one connection and their
acknowledgements gathered, so offsets follow the order of the entries and a
batch costs two round trips (two or three more when keys were already claimed),
not one per entry.

Reading uses a short-lived pull consumer (acks off, in memory) that a stream
object keeps while reads continue where the last one stopped, so a worker paging
through a stream costs one request per page. ``trim(before)`` finds the first
entry appended at or after ``before`` with a consumer started by time, marks the
keys of the entries before it in the key memory, and purges up to it.

Durability: an append returns once JetStream acknowledged every entry, i.e. it
is stored by the stream's leader and, with ``replicas=3``, by a majority of the
cluster. A server writes to its files before it acknowledges but syncs them to
disk on its own schedule (every two minutes by default), so a power loss, unlike
a process crash, can lose the last moments unless the streams are replicated.
While a cluster elects a new leader (seconds) calls fail with EngineError; retry.

The ``nats://`` URL and the shared connection are described in ``tether.stream.natslink``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg

from tether.errors import EngineError
from tether.stream.base import (
    StoredEntry,
    Stream,
    StreamEntry,
    check_name,
    check_read,
    checked_batch,
)
from tether.stream.natslink import (
    NS,
    ApiError,
    ConsumerGone,
    Link,
    NoResponders,
    T,
    acquire,
    answer,
    parse_url,
    release,
    wrong_last,
)

_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_ESCAPED = re.compile(r"=([0-9A-F]{2})")
_EXPECT_NONE = {"Nats-Expected-Last-Subject-Sequence": "0"}
_HEADERS = "Tether-Headers"
_CLAIM = b"c"
_TRIMMED = b"t"
_SCAN_BATCH = 1000
_CONSUMER_IDLE_NS = 60 * NS  # the server drops a reader idle this long
_READER_REUSE = 30.0  # seconds: an idler reader is replaced rather than trusted
_NO_MESSAGE = 10037


def _encode_key(key: str) -> str:
    if _UNSAFE.search(key) is None:
        return key
    return "".join(chr(b) if b in _PLAIN else f"={b:02X}" for b in key.encode())


def _decode_key(token: str) -> str:
    if "=" not in token:
        return token
    return urllib.parse.unquote_to_bytes(_ESCAPED.sub(r"%\1", token)).decode()


def _rfc3339(ts: float) -> str:
    seconds = math.floor(ts)
    nanos = min(round((ts - seconds) * NS), NS - 1)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


# The stream ------------------------------------------------------------------------------


@dataclass
class _Reader:
    """A pull consumer that continues where the last read stopped."""

    name: str
    after: int  # the offset the next delivery follows
    delivered: int  # the consumer sequence of the last delivery
    epoch: int  # the connection's reconnect count when it was made
    used: float  # time.monotonic() of its last pull


class JetStreamStream(Stream):
    """One named stream in NATS JetStream (see the module documentation)."""

    def __init__(self, url: str, name: str) -> None:
        self.name = check_name(name, "stream")
        self.url = url
        target = parse_url(url)
        self._target = target
        prefix = target.prefix
        self._what = f"stream {name!r}"
        self._js_name = f"{prefix}-{name}"
        self._subjects = f"{prefix}.{name}."
        self._keyed = f"{prefix}.{name}.k."
        self._keyless = f"{prefix}.{name}.n"
        self._keys_bucket = f"{prefix}_keys"
        self._keys = f"$KV.{prefix}_keys.{name}."
        self._offsets_bucket = f"{prefix}_consumers"
        self._offsets = f"$KV.{prefix}_consumers.{name}."
        self._last_seen = 0
        self._reader: _Reader | None = None
        self._read_lock: asyncio.Lock | None = None
        self._lock = threading.Lock()
        link = acquire(target)
        try:
            link.call(self._setup(link), f"open {self._what}")
        except BaseException:
            release(link)
            raise
        self._link: Link | None = link

    # plumbing
    def _live(self) -> Link:
        link = self._link
        if link is None:
            raise EngineError(f"{self._what} at {self._target.display} is closed; open it again")
        return link

    def _run(self, what: str, make: Callable[[Link], Coroutine[Any, Any, T]]) -> T:
        link = self._live()
        return link.call(make(link), f"{what} on {self._what}")

    async def _setup(self, link: Link) -> None:
        replicas = self._target.replicas
        self._read_lock = asyncio.Lock()
        await link.ensure_stream(
            {
                "name": self._js_name,
                "subjects": [self._subjects + ">"],
                "retention": "limits",
                "storage": "file",
                "num_replicas": replicas,
                "discard": "old",
                "max_msgs": -1,
                "max_bytes": -1,
                "max_age": 0,
                "max_msg_size": -1,
                "duplicate_window": 120 * NS,
                "allow_direct": True,
            }
        )
        for bucket in (self._keys_bucket, self._offsets_bucket):
            await link.ensure_stream(
                {
                    "name": f"KV_{bucket}",
                    "subjects": [f"$KV.{bucket}.>"],
                    "retention": "limits",
                    "storage": "file",
                    "num_replicas": replicas,
                    "discard": "new",
                    "max_msgs_per_subject": 1,
                    "max_msgs": -1,
                    "max_bytes": -1,
                    "max_age": 0,
                    "max_msg_size": -1,
                    "duplicate_window": 120 * NS,
                    "allow_rollup_hdrs": True,
                    "deny_delete": True,
                    "allow_direct": True,
                }
            )

    def _subject(self, key: str | None) -> str:
        return self._keyless if key is None else self._keyed + _encode_key(key)

    async def _last_by_subject(
        self, link: Link, stream: str, subjects: Sequence[str]
    ) -> list[tuple[bytes, int] | None]:
        """The newest message's (data, sequence) on each subject, None where there is none."""
        replies = await link.requests(
            (
                f"$JS.API.STREAM.MSG.GET.{stream}",
                json.dumps({"last_by_subj": subject}).encode(),
                None,
            )
            for subject in subjects
        )
        out: list[tuple[bytes, int] | None] = []
        for reply in replies:
            try:
                message = answer(reply)["message"]
            except ApiError as exc:
                if exc.code != _NO_MESSAGE:
                    raise
                out.append(None)
                continue
            out.append((base64.b64decode(message.get("data") or ""), int(message["seq"])))
        return out

    async def _memory(self, link: Link, keys: Sequence[str]) -> list[tuple[bytes, int] | None]:
        """What the key memory says about each key: (value, revision) or None."""
        return await self._last_by_subject(
            link, f"KV_{self._keys_bucket}", [self._keys + _encode_key(k) for k in keys]
        )

    async def _held_in_stream(self, link: Link, keys: Sequence[str]) -> list[bool]:
        found = await self._last_by_subject(link, self._js_name, [self._subject(k) for k in keys])
        return [f is not None for f in found]

    async def _stream_state(self, link: Link) -> dict[str, Any]:
        state: dict[str, Any] = (await link.api(f"STREAM.INFO.{self._js_name}"))["state"]
        self._last_seen = max(self._last_seen, int(state["last_seq"]))
        return state

    # the port: appending
    def append(self, entries: Iterable[StreamEntry], unique: bool = False) -> list[int | None]:
        batch = checked_batch(entries, unique, self._what)
        if not batch:
            return []
        return self._run("append", lambda link: self._append(link, batch, unique))

    async def _append(self, link: Link, batch: list[StreamEntry], unique: bool) -> list[int | None]:
        keys = list(dict.fromkeys(e.key for e in batch if e.key is not None))
        # 1. Claim every key: after this, the key memory knows each one.
        replies = await link.requests(
            (self._keys + _encode_key(key), _CLAIM, _EXPECT_NONE) for key in keys
        )
        claimed: list[str] = []
        for key, reply in zip(keys, replies, strict=True):
            try:
                answer(reply)
            except ApiError as exc:
                if wrong_last(exc) is None:
                    raise
                claimed.append(key)
        # 2. Unique: settle the keys someone claimed before us.
        held: set[str] = set()
        checked: dict[str, int] = {}  # published over another's claim: key -> its revision
        if unique and claimed:
            memory = await self._memory(link, claimed)
            open_claims = []
            for key, known in zip(claimed, memory, strict=True):
                if known is None or known[0].startswith(_TRIMMED):
                    held.add(key)  # (a claim never disappears; None is defensive)
                else:
                    open_claims.append((key, known[1]))
            landed = await self._held_in_stream(link, [k for k, _ in open_claims])
            for (key, revision), there in zip(open_claims, landed, strict=True):
                if there:
                    held.add(key)
                else:
                    checked[key] = revision
        # 3. Publish in order.
        slots: list[int | None] = [None] * len(batch)
        plan: list[int] = []
        messages: list[tuple[str, bytes, dict[str, str] | None]] = []
        taken: set[str] = set()
        encoded: dict[tuple[tuple[str, str], ...], str] = {}
        for i, entry in enumerate(batch):
            entry_key = entry.key
            headers: dict[str, str] | None = None
            if unique and entry_key is not None:
                if entry_key in held or entry_key in taken:
                    continue
                taken.add(entry_key)
                headers = dict(_EXPECT_NONE)
            if entry.headers:
                items = tuple(entry.headers.items())
                text = encoded.get(items)
                if text is None:
                    text = encoded[items] = json.dumps(
                        entry.headers, sort_keys=True, separators=(",", ":")
                    )
                headers = headers or {}
                headers[_HEADERS] = text
            plan.append(i)
            messages.append((self._subject(entry_key), entry.data, headers))
        acks = await link.requests(messages)
        for i, ack in zip(plan, acks, strict=True):
            try:
                slots[i] = int(answer(ack)["seq"])
            except ApiError as exc:
                if not unique or wrong_last(exc) is None:
                    raise
                # Another writer published this key first: it holds it.
        self._last_seen = max([self._last_seen, *(s for s in slots if s is not None)])
        # 4. Published over another's claim: make sure no trim marked the key meanwhile.
        if checked:
            recheck = [
                (i, k)
                for i in plan
                if slots[i] is not None and (k := batch[i].key) is not None and k in checked
            ]
            if recheck:
                await self._recheck(link, recheck, checked, slots)
        return slots

    async def _recheck(
        self,
        link: Link,
        recheck: list[tuple[int, str]],
        checked: dict[str, int],
        slots: list[int | None],
    ) -> None:
        memory = await self._memory(link, [key for _, key in recheck])
        for (i, key), known in zip(recheck, memory, strict=True):
            seq = slots[i]
            if known is None or seq is None or known[1] == checked[key]:
                continue
            value = known[0]
            if value.startswith(_TRIMMED) and int(value[1:] or 0) < seq:
                # The key was held all along; its entry was trimmed between our two reads.
                with contextlib.suppress(ApiError):
                    await link.api(
                        f"STREAM.MSG.DELETE.{self._js_name}", {"seq": seq, "no_erase": True}
                    )
                slots[i] = None

    # the port: reading
    def read(self, after: int, limit: int) -> list[StoredEntry]:
        check_read(after, limit)
        return self._run("read", lambda link: self._read(link, after, limit))

    async def _read(self, link: Link, after: int, limit: int) -> list[StoredEntry]:
        assert self._read_lock is not None
        async with self._read_lock:
            for attempt in (1, 2):
                reader = self._reader
                fresh = not (
                    reader is not None
                    and reader.after == after
                    and reader.epoch == link.epoch
                    and time.monotonic() - reader.used < _READER_REUSE
                )
                if fresh or reader is None:
                    reader = await self._new_reader(link, after)
                reader.used = time.monotonic()
                try:
                    msgs = await link.pull(self._js_name, reader.name, limit)
                except (ConsumerGone, TimeoutError) as exc:
                    # The server may have dropped the consumer (a restart, a new leader): a
                    # pull then goes unanswered. Try once more with a new one.
                    self._reader = None
                    if fresh or attempt == 2:
                        if isinstance(exc, TimeoutError):
                            raise
                        raise EngineError(
                            f"read on {self._what}: the server dropped the reading consumer "
                            f"{reader.name!r} as soon as it was made; try again"
                        ) from None
                    continue
                except BaseException:
                    self._reader = None  # deliveries may be in flight to nobody
                    raise
                out: list[StoredEntry] = []
                for msg in msgs:
                    entry, delivered = self._decode(msg, reader.name)
                    if delivered != reader.delivered + 1:
                        break
                    reader.delivered = delivered
                    reader.after = entry.offset
                    out.append(entry)
                else:
                    return out
                self._reader = None  # a delivery went missing: start over from ``after``
            raise EngineError(
                f"read on {self._what}: the server's deliveries were out of step twice; try again"
            )

    async def _new_reader(self, link: Link, after: int) -> _Reader:
        old, self._reader = self._reader, None
        if old is not None:
            with contextlib.suppress(ApiError, NoResponders):
                await link.api(f"CONSUMER.DELETE.{self._js_name}.{old.name}")
        name = await self._consumer(
            link, {"deliver_policy": "by_start_sequence", "opt_start_seq": after + 1}
        )
        self._reader = _Reader(name, after, 0, link.epoch, time.monotonic())
        return self._reader

    async def _consumer(self, link: Link, config: dict[str, Any]) -> str:
        answer = await link.api(
            f"CONSUMER.CREATE.{self._js_name}",
            {
                "stream_name": self._js_name,
                "config": {
                    "ack_policy": "none",
                    "replay_policy": "instant",
                    "mem_storage": True,
                    "num_replicas": 1,
                    "inactive_threshold": _CONSUMER_IDLE_NS,
                    **config,
                },
            },
        )
        return str(answer["name"])

    def _decode(self, msg: Msg, consumer: str) -> tuple[StoredEntry, int]:
        """The entry a consumer delivered, and its consumer sequence."""
        tokens = msg.reply.split(".")
        base = 2 if len(tokens) == 9 else 4  # $JS.ACK.<stream>... or $JS.ACK.<domain>.<hash>...
        if len(tokens) < 9 or tokens[base + 1] != consumer:
            return StoredEntry(None, b"", offset=0, appended_at=0.0), -1
        seq, delivered, stamp = int(tokens[base + 3]), int(tokens[base + 4]), tokens[base + 5]
        subject = msg.subject
        key = None if subject == self._keyless else _decode_key(subject[len(self._keyed) :])
        headers = msg.headers
        text = headers.get(_HEADERS) if headers else None
        entry = StoredEntry(
            key=key,
            data=msg.data,
            headers=json.loads(text) if text else {},
            offset=seq,
            appended_at=int(stamp) / NS,
        )
        return entry, delivered

    def last_offset(self) -> int:
        return self._run("last_offset", self._last_offset)

    async def _last_offset(self, link: Link) -> int:
        return int((await self._stream_state(link))["last_seq"])

    # the port: consumers
    def position(self, consumer: str) -> int:
        check_name(consumer, "consumer")
        return self._run("position", lambda link: self._position(link, consumer))

    async def _position(self, link: Link, consumer: str) -> int:
        [known] = await self._last_by_subject(
            link, f"KV_{self._offsets_bucket}", [self._offsets + consumer]
        )
        return 0 if known is None else int(known[0])

    def commit(self, consumer: str, offset: int) -> None:
        check_name(consumer, "consumer")
        self._run("commit", lambda link: self._move(link, consumer, offset, backwards=False))

    def reset(self, consumer: str, offset: int) -> None:
        check_name(consumer, "consumer")
        self._run("reset", lambda link: self._move(link, consumer, offset, backwards=True))

    async def _move(self, link: Link, consumer: str, offset: int, backwards: bool) -> None:
        if offset < 0 or offset > self._last_seen:
            last = await self._last_offset(link) if offset >= 0 else self._last_seen
            if not 0 <= offset <= last:
                raise ValueError(
                    f"consumer {consumer!r} of {self._what}: offset {offset} is outside "
                    f"0..{last} (the stream's last offset)"
                )
        subject = self._offsets + consumer
        stream = f"KV_{self._offsets_bucket}"
        value = str(offset).encode()
        while True:
            headers = None
            if not backwards:
                [known] = await self._last_by_subject(link, stream, [subject])
                if known is not None and int(known[0]) >= offset:
                    return  # never backwards: a stale worker cannot undo progress
                revision = 0 if known is None else known[1]
                headers = {"Nats-Expected-Last-Subject-Sequence": str(revision)}
            [reply] = await link.requests([(subject, value, headers)])
            try:
                answer(reply)
                return
            except ApiError as exc:
                if backwards or wrong_last(exc) is None:
                    raise
                # Another process moved it meanwhile: look again.

    # the port: retention and key memory
    def trim(self, before: float) -> int:
        return self._run("trim", lambda link: self._trim(link, before))

    async def _trim(self, link: Link, before: float) -> int:
        state = await self._stream_state(link)
        first, last = int(state["first_seq"]), int(state["last_seq"])
        if int(state["messages"]) == 0 or before <= 0:
            return 0
        # The first entry appended at or after ``before`` (times never decrease).
        cut = last + 1
        if before < 253402300800:  # year 10000: everything is older
            found = await self._scan(
                link,
                {"deliver_policy": "by_start_time", "opt_start_time": _rfc3339(before)},
                first_only=True,
            )
            if found:
                cut = min(cut, found[0][0])
        if cut <= first:
            return 0
        # Remember the keys of what goes, then let it go.
        keyed = await self._scan(
            link,
            {
                "deliver_policy": "by_start_sequence",
                "opt_start_seq": first,
                "filter_subject": self._keyed + ">",
            },
            stop=cut,
        )
        newest: dict[str, int] = {}
        for seq, subject in keyed:
            newest[subject[len(self._keyed) :]] = seq
        await self._mark_trimmed(link, newest)
        answer = await link.api(f"STREAM.PURGE.{self._js_name}", {"seq": cut})
        return int(answer.get("purged", 0))

    async def _mark_trimmed(self, link: Link, newest: dict[str, int]) -> None:
        replies = await link.requests(
            (self._keys + token, _TRIMMED + str(seq).encode(), None)
            for token, seq in newest.items()
        )
        for reply in replies:
            answer(reply)

    async def _scan(
        self,
        link: Link,
        config: dict[str, Any],
        stop: int | None = None,
        first_only: bool = False,
    ) -> list[tuple[int, str]]:
        """(sequence, subject) of the messages a temporary consumer delivers, below ``stop``."""
        name = await self._consumer(link, {"headers_only": True, **config})
        out: list[tuple[int, str]] = []
        try:
            while True:
                msgs = await link.pull(self._js_name, name, 1 if first_only else _SCAN_BATCH)
                for msg in msgs:
                    entry, _ = self._decode(msg, name)
                    if stop is not None and entry.offset >= stop:
                        return out
                    out.append((entry.offset, msg.subject))
                if first_only or not msgs:
                    return out
        finally:
            with contextlib.suppress(ApiError, NoResponders):
                await link.api(f"CONSUMER.DELETE.{self._js_name}.{name}")

    def contains(self, keys: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            self._live()
            return set()
        return self._run("contains", lambda link: self._contains(link, wanted))

    async def _contains(self, link: Link, keys: list[str]) -> set[str]:
        found: set[str] = set()
        claims: list[str] = []
        for key, known in zip(keys, await self._memory(link, keys), strict=True):
            if known is None:
                continue  # never claimed, so never appended
            if known[0].startswith(_TRIMMED):
                found.add(key)
            else:
                claims.append(key)
        if not claims:
            return found
        landed = await self._held_in_stream(link, claims)
        found.update(k for k, there in zip(claims, landed, strict=True) if there)
        # A claim without an entry: unfinished, or its entry was trimmed between the reads.
        loose = [k for k, there in zip(claims, landed, strict=True) if not there]
        if loose:
            again = await self._memory(link, loose)
            found.update(
                k
                for k, known in zip(loose, again, strict=True)
                if known is not None and known[0].startswith(_TRIMMED)
            )
        return found

    # closing
    def close(self) -> None:
        with self._lock:
            link, self._link = self._link, None
        if link is None:
            return
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                link.call(
                    link.api(f"CONSUMER.DELETE.{self._js_name}.{reader.name}"), "close reader"
                )
        release(link)

    def __repr__(self) -> str:
        return f"JetStreamStream({self._target.display!r}, {self.name!r})"
