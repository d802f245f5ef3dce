"""A BLE 4.2 link between a brush and its owner's phone, notification by notification.

The brush streams stored records to the phone as GATT notifications of
``payload`` bytes: 20 at the default ATT MTU of 23, up to 244 where the phone
negotiates the Data Length Extension. Notifications are not acknowledged, so
some are lost; the connection can drop at any packet, or when the phone leaves
range. The drain protocol below is the simulated brush firmware's own, not part
of the wire contract: each notification is ``index (u8, rolling) ‖ chunk``, and
each record starts a new notification with a header ``length (u16) ‖ seq (u32)``.
The phone sees a lost notification as a jump in the index, or, for the last
ones, when the brush indicates the end of the stream with the last seq it sent
and the phone has not got that record whole. It drops the damaged record and
writes the sync cursor back to it: the brush sends the range again from there.
Writes to the control point and the end-of-stream indication are acknowledged,
so they are never lost.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

HEADER = struct.Struct("<HI")
DEFAULT_PAYLOAD = 20  # ATT MTU 23 minus the 3-byte header
Stored = tuple[int, bytes]  # (seq, record bytes)


def notifications(records: Sequence[Stored], payload: int, first_index: int = 0) -> list[bytes]:
    """The notifications that carry ``records`` in order, ``payload`` bytes at most each."""
    if payload < 2 + 1:
        raise ValueError("a notification must carry its index and at least two bytes")
    chunk = payload - 1
    out: list[bytes] = []
    index = first_index
    for seq, data in records:
        blob = HEADER.pack(len(data), seq) + data
        for at in range(0, len(blob), chunk):
            out.append(bytes((index & 0xFF,)) + blob[at : at + chunk])
            index += 1
    return out


class LostNotification(Exception):
    """The rolling index jumped: a notification never arrived."""


class Reassembler:
    """The phone's side: whole records out of notifications, or a detected loss."""

    def __init__(self) -> None:
        self._index = 0xFF  # every stream starts at index 0
        self._blob = bytearray()
        self._need: int | None = None

    @property
    def incomplete(self) -> bool:
        return bool(self._blob)

    def feed(self, packet: bytes) -> Stored | None:
        index, chunk = packet[0], packet[1:]
        if index != (self._index + 1) & 0xFF:
            raise LostNotification(f"expected notification {(self._index + 1) & 0xFF}, got {index}")
        self._index = index
        self._blob += chunk
        if self._need is None and len(self._blob) >= HEADER.size:
            self._need = HEADER.size + HEADER.unpack_from(self._blob)[0]
        if self._need is not None and len(self._blob) >= self._need:
            length, seq = HEADER.unpack_from(self._blob)
            data = bytes(self._blob[HEADER.size : HEADER.size + length])
            self._blob.clear()
            self._need = None
            return seq, data
        return None


@dataclass(frozen=True)
class LinkModel:
    """How one phone's BLE link behaves."""

    payload: int = DEFAULT_PAYLOAD
    packets_per_second: float = 66.0  # ~10 kbps at 20 bytes: 2 packets per 30 ms interval
    loss: float = 0.01  # chance each notification is lost
    drop: float = 0.1  # chance a drain's connection drops somewhere along the way
    max_rerequests: int = 3  # cursor rewinds per connection before the phone gives up


@dataclass
class Drain:
    """What one connection's drain got the phone."""

    received: list[Stored]
    packets: int = 0
    lost: int = 0
    rerequests: int = 0
    dropped: bool = False
    complete: bool = False
    seconds: float = 0.0
    redrained: int = 0  # records sent more than once in this connection


def drain(
    stream_from: Callable[[int], list[Stored]],
    cursor: int,
    link: LinkModel,
    rng: random.Random,
    window: float,
) -> Drain:
    """Drain a brush from ``cursor`` over ``link`` within ``window`` seconds in range.

    ``stream_from(seq)`` is the brush answering a cursor write: its stored records
    from that seq on, oldest first.
    """
    result = Drain([])
    budget = int(window * link.packets_per_second)
    drop_after: int | None = None
    start = cursor
    sent_before: set[int] = set()
    while True:
        stream = stream_from(start)
        packets = notifications(stream, link.payload)
        if drop_after is None and rng.random() < link.drop and packets:
            drop_after = result.packets + rng.randrange(len(packets))
        result.redrained += sum(1 for seq, _ in stream if seq in sent_before)
        sent_before.update(seq for seq, _ in stream)
        phone = Reassembler()
        resume: int | None = None
        for packet in packets:
            if result.packets >= budget or (
                drop_after is not None and result.packets >= drop_after
            ):
                result.dropped = True
                result.seconds = result.packets / link.packets_per_second
                return result
            result.packets += 1
            if rng.random() < link.loss:
                result.lost += 1
                continue
            try:
                done = phone.feed(packet)
            except LostNotification:
                resume = result.received[-1][0] + 1 if result.received else start
                break
            if done is not None:
                result.received.append(done)
        last_sent = stream[-1][0] if stream else None
        if resume is None and last_sent is not None:  # the brush indicates the end
            last_got = result.received[-1][0] if result.received else None
            if last_got != last_sent:  # the last notifications were the lost ones
                resume = last_got + 1 if last_got is not None else start
        if resume is None:
            result.complete = True
            break
        if result.rerequests >= link.max_rerequests:
            break
        result.rerequests += 1
        start = resume
    result.seconds = result.packets / link.packets_per_second
    return result
