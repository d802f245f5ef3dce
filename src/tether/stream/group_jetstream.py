"""Work groups on JetStream: one durable pull consumer per group, explicit acks.

The group ``G`` on stream ``S`` (prefix ``P``) is the durable consumer ``G`` of
the JetStream stream ``P-S``, file-backed and replicated like the stream, with
``ack_policy: explicit`` and ``ack_wait`` = the lease. JetStream does the
sharing: a pull hands out messages no other puller holds, and a message not
acknowledged within ``ack_wait`` is delivered again to the next pull, whoever
makes it. ``ack`` sends ``+ACK`` to each message's reply subject and waits for
the server to confirm it, so an acknowledged entry is never given again, even
after a leader change. A group made once keeps its lease; opening it with
another lease updates the consumer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tether.stream.base import StoredEntry
from tether.stream.group import WorkGroup
from tether.stream.jetstream import JetStreamStream
from tether.stream.natslink import NS, ApiError, Link

_CONSUMER_NOT_FOUND = 10014
_PULL_EXPIRES = 0.1  # seconds: the longest an empty claim may wait for the server's answer


class JetStreamGroup(WorkGroup):
    """A work group over one JetStream stream (see the module documentation)."""

    def __init__(self, url: str, stream: str, group: str, lease_seconds: float) -> None:
        self.stream = stream
        self.group = group
        self.lease_seconds = lease_seconds
        # The stream's connection and names (same engine); opening it makes the stream.
        self._stream = JetStreamStream(url, stream)
        self._js = self._stream._js_name
        self._replies: dict[int, str] = {}  # offset -> reply subject of its live lease
        try:
            self._stream._run("open work group", self._ensure)
        except BaseException:
            self._stream.close()
            raise

    async def _ensure(self, link: Link) -> None:
        config: dict[str, Any] = {
            "durable_name": self.group,
            "deliver_policy": "all",
            "ack_policy": "explicit",
            "ack_wait": round(self.lease_seconds * NS),
            "max_deliver": -1,
            "max_ack_pending": -1,
            "replay_policy": "instant",
            "num_replicas": 0,  # as the stream
        }
        try:
            info = await link.api(f"CONSUMER.INFO.{self._js}.{self.group}")
        except ApiError as exc:
            if exc.code != _CONSUMER_NOT_FOUND:
                raise
            info = None
        if info is None or info["config"].get("ack_wait") != config["ack_wait"]:
            await link.api(
                f"CONSUMER.DURABLE.CREATE.{self._js}.{self.group}",
                {"stream_name": self._js, "config": config},
            )

    def claim(self, limit: int) -> list[StoredEntry]:
        if limit < 1:
            raise ValueError(f"claim needs limit >= 1, got {limit}")
        return self._stream._run("claim", lambda link: self._claim(link, limit))

    async def _claim(self, link: Link, limit: int) -> list[StoredEntry]:
        msgs = await link.pull(self._js, self.group, limit, expires=_PULL_EXPIRES)
        out: list[StoredEntry] = []
        for msg in msgs:
            entry, delivered = self._stream._decode(msg, self.group)
            if delivered < 0:  # not a delivery of this consumer
                continue
            self._replies[entry.offset] = msg.reply
            out.append(entry)
        return out

    def ack(self, offsets: Iterable[int]) -> None:
        replies = [r for o in set(offsets) if (r := self._replies.pop(o, None)) is not None]
        if replies:
            self._stream._run("ack", lambda link: self._ack(link, replies))

    async def _ack(self, link: Link, replies: list[str]) -> None:
        # With a reply subject of our own, the server confirms each ack once it holds it.
        await link.requests((reply, b"+ACK", None) for reply in replies)

    def pending(self) -> int:
        info = self._stream._run(
            "pending", lambda link: link.api(f"CONSUMER.INFO.{self._js}.{self.group}")
        )
        return int(info["num_pending"]) + int(info["num_ack_pending"])

    def close(self) -> None:
        self._replies.clear()
        self._stream.close()

    def __repr__(self) -> str:
        return f"JetStreamGroup({self._stream._target.display!r}, {self.stream!r}, {self.group!r})"
