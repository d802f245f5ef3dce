"""The phone's side of a relayed update: stream an image into a device, window by window.

A phone near its device gets connection windows of some seconds; each one may
close before the image is in (the user walks away, the app is closed). In a
window the phone offers the update with its signed envelope and the platform's
time, hears the device's cursor, and sends chunks from the one after it, a
chunk per packet at the link's payload size. A nacked chunk is sent again, at
most three times; a device that still cannot take it pauses the transfer, and
the phone stops until the next window. Nothing is kept on the phone between
windows but the image: the device's cursor says where to go on.

The link follows the BLE model of ``tether.sim.ble``: 20 payload bytes a
packet at the default MTU and about 66 packets a second; here a packet can
also arrive damaged, which the chunk's CRC catches.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from tether.contract.chunks import chunk_count, chunk_span, encode_chunk
from tether.sim.ble import DEFAULT_PAYLOAD
from tether.sim.ota.install import Committed, Refused
from tether.sim.ota.receiver import RETRIES, Ack, Cursor, Nack, Paused, Reply


class Receiver(Protocol):
    """What the phone talks to: ``OtaDevice``, or a device reached another way."""

    def offer(self, envelope: bytes, platform_time: int, payload: int) -> object: ...

    def receive(self, chunk: bytes) -> Reply: ...


@dataclass(frozen=True)
class RelayLink:
    payload: int = DEFAULT_PAYLOAD
    packets_per_second: float = 66.0
    corrupt: float = 0.0  # chance a chunk arrives with a flipped bit


@dataclass
class Window:
    """What one connection window did."""

    resumed_from: int = -1  # the cursor the device reported
    cursor: int = -1  # the last chunk acked in order
    sent: int = 0
    nacked: int = 0
    interrupted: bool = False  # the window closed with chunks still to send
    paused: bool = False
    complete: bool = False
    refused: Refused | None = None
    replies: list[str] = field(default_factory=list)


class ChunkSender:
    """Streams one transfer (a full image or a patch) into a device across windows."""

    def __init__(
        self,
        envelope: bytes,
        data: bytes,
        platform_time: int,
        link: RelayLink | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.envelope = envelope
        self.data = data
        self.platform_time = platform_time
        self.link = link or RelayLink()
        self.rng = rng or random.Random(0)
        self.count = chunk_count(len(data), self.link.payload)
        self.windows: list[Window] = []

    def chunk(self, index: int) -> bytes:
        start, end = chunk_span(index, len(self.data), self.link.payload)
        return encode_chunk(index, self.data[start:end], min_payload=1)

    def _damage(self, packet: bytes) -> bytes:
        if self.rng.random() >= self.link.corrupt:
            return packet
        damaged = bytearray(packet)
        damaged[self.rng.randrange(len(damaged))] ^= 1 << self.rng.randrange(8)
        return bytes(damaged)

    def window(self, device: Receiver, seconds: float) -> Window:
        """One connection window of ``seconds``, spent offering and sending."""
        result = Window()
        self.windows.append(result)
        answer = device.offer(self.envelope, self.platform_time, self.link.payload)
        if isinstance(answer, Refused):
            result.refused = answer
            return result
        if isinstance(answer, Committed):
            result.complete = True
            return result
        cursor = getattr(answer, "cursor", None)
        if not isinstance(cursor, Cursor):
            raise TypeError(f"the device answered the offer with {answer!r}")
        result.resumed_from = result.cursor = cursor.cursor
        budget = int(seconds * self.link.packets_per_second)
        index = cursor.cursor + 1
        tries = 0
        while index < self.count:
            if result.sent >= budget:
                result.interrupted = True
                return result
            reply = device.receive(self._damage(self.chunk(index)))
            result.sent += 1
            if isinstance(reply, Ack):
                result.cursor = max(result.cursor, reply.index)
                index, tries = reply.index + 1, 0
                if reply.complete:
                    break
            elif isinstance(reply, Nack):
                result.nacked += 1
                result.replies.append(f"nack {reply.expected} {reply.reason}")
                tries = tries + 1 if reply.expected == index else 1
                index = reply.expected
                if tries > RETRIES:
                    result.paused = True
                    return result
            elif isinstance(reply, Paused):
                result.replies.append(f"paused at {reply.expected}")
                result.paused = True
                return result
        result.complete = True
        return result

    @property
    def complete(self) -> bool:
        return any(w.complete for w in self.windows)


def relay(sender: ChunkSender, device: Receiver, windows: list[float]) -> list[Window]:
    """Run ``sender`` through the windows given, stopping once the transfer is complete."""
    done: list[Window] = []
    for seconds in windows:
        done.append(sender.window(device, seconds))
        if sender.complete or done[-1].refused is not None:
            break
    return done
