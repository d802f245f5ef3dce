"""The device's chunk receiver: chunks into the inactive slot, ack or nack, a cursor.

The receiver takes chunks of the transfer the metadata describes (``Staging``)
strictly in order. A chunk that arrives whole and is the next one is written to
the slot and the cursor (the highest contiguous chunk committed) is persisted;
the answer is an ack. A damaged chunk, a chunk out of order or one of the wrong
length is nacked with the index the receiver wants. A chunk already committed
is acked again without a write: its ack was lost on the way back.

A chunk may be sent again at most ``retries`` times (3) after a nack; when the
last retry fails too, the transfer pauses: every chunk is answered ``Paused``
until the next connection. On a connection the receiver reports its cursor,
and the sender resumes from the chunk after it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tether.contract.chunks import ChunkError, chunk_count, chunk_span, decode_chunk
from tether.sim.ota.flash import Flash

RETRIES = 3


@dataclass(frozen=True)
class Ack:
    index: int
    complete: bool = False  # the last chunk of the transfer is committed


@dataclass(frozen=True)
class Nack:
    expected: int  # the chunk the receiver wants next
    reason: str  # crc, short, oversize, index, length, no_transfer


@dataclass(frozen=True)
class Paused:
    expected: int


Reply = Ack | Nack | Paused


@dataclass(frozen=True)
class Cursor:
    """What the receiver reports when a sender connects."""

    cursor: int  # highest contiguous chunk committed; -1 for none
    payload: int
    count: int  # chunks in the transfer

    @property
    def complete(self) -> bool:
        return self.cursor + 1 >= self.count


class ChunkReceiver:
    """Chunks of the staged transfer into flash. Its retry count is RAM, lost with power."""

    def __init__(self, flash: Flash, retries: int = RETRIES) -> None:
        self.flash = flash
        self.retries = retries
        self.failures = 0
        self.paused = False

    def connect(self) -> Cursor | None:
        """A sender connected: the pause ends, and the cursor is what to resume after."""
        self.failures = 0
        self.paused = False
        return self.cursor()

    def cursor(self) -> Cursor | None:
        staging = self.flash.meta.staging
        if staging is None or staging.patching:
            return None
        return Cursor(staging.cursor, staging.payload, chunk_count(staging.size, staging.payload))

    def receive(self, data: bytes) -> Reply:
        meta = self.flash.meta
        staging = meta.staging
        if staging is None or staging.patching:
            return Nack(0, "no_transfer")
        expected = staging.cursor + 1
        if self.paused:
            return Paused(expected)
        count = chunk_count(staging.size, staging.payload)
        try:
            chunk = decode_chunk(data, min_payload=1)
        except ChunkError as exc:
            return self._failed(expected, exc.reason)
        if chunk.index < expected:
            return Ack(chunk.index, complete=expected >= count)
        if chunk.index != expected:
            return self._failed(expected, "index")
        start, end = chunk_span(chunk.index, staging.size, staging.payload)
        if len(chunk.payload) != end - start:
            return self._failed(expected, "length")
        self.flash.write(staging.slot, start, chunk.payload)
        self.flash.commit(
            dataclasses.replace(meta, staging=dataclasses.replace(staging, cursor=chunk.index))
        )
        self.failures = 0
        return Ack(chunk.index, complete=chunk.index + 1 == count)

    def _failed(self, expected: int, reason: str) -> Reply:
        self.failures += 1
        if self.failures > self.retries:
            self.paused = True
            return Paused(expected)
        return Nack(expected, reason)
