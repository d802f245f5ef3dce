"""The chunk receiver and the phone relay: nacks, retries, pauses, cursors and windows."""

from __future__ import annotations

import hashlib
import itertools
import random

from tests.sim.ota.helpers import PLATFORM_NOW, device, full_update, images, new_key
from tether.contract.chunks import encode_chunk
from tether.sim.ota import (
    Accepted,
    Ack,
    ChunkSender,
    Nack,
    Paused,
    RelayLink,
    build_image,
    relay,
)


def test_a_corrupted_chunk_is_nacked_retried_and_three_failed_retries_pause() -> None:
    key = new_key()
    old, new = images(600)
    update = full_update(key, new, "1.1.0")
    dev = device(key, old)
    answer = dev.offer(update.envelope, PLATFORM_NOW, 20)
    assert isinstance(answer, Accepted) and answer.cursor.cursor == -1
    good = encode_chunk(0, new[:20])
    damaged = bytes([good[0], good[1] ^ 0x40]) + good[2:]
    assert dev.receive(good) == Ack(0)
    assert dev.receive(good) == Ack(0)  # a repeat whose ack was lost: acked, not written
    chunk1 = encode_chunk(1, new[20:40])
    bad1 = chunk1[:-1] + bytes([chunk1[-1] ^ 1])
    # The first send and three retries all damaged: three nacks, then the pause.
    replies = [dev.receive(bad1) for _ in range(4)]
    assert replies == [Nack(1, "crc")] * 3 + [Paused(1)]
    assert dev.receive(chunk1) == Paused(1)  # paused until the next connection
    assert any(e.kind == "paused" for e in dev.events)
    assert dev.receive(encode_chunk(5, new[100:120])) == Paused(1)
    answer = dev.offer(update.envelope, PLATFORM_NOW, 20)
    assert isinstance(answer, Accepted) and answer.cursor.cursor == 0
    assert dev.receive(encode_chunk(2, new[40:60])) == Nack(1, "index")
    assert dev.receive(encode_chunk(1, new[20:35], min_payload=1)) == Nack(1, "length")
    assert dev.receive(b"\x01\x00") == Nack(1, "short")
    assert dev.receive(damaged) == Paused(1)  # the fourth failure in a row for chunk 1
    assert dev.flash.meta.staging is not None and dev.flash.meta.staging.cursor == 0


def test_a_retry_that_gets_through_does_not_pause() -> None:
    key = new_key()
    old, new = images(600)
    update = full_update(key, new, "1.1.0")
    dev = device(key, old)
    dev.offer(update.envelope, PLATFORM_NOW, 20)
    chunk0 = encode_chunk(0, new[:20])
    bad0 = chunk0[:5] + bytes([chunk0[5] ^ 2]) + chunk0[6:]
    assert [dev.receive(bad0) for _ in range(3)] == [Nack(0, "crc")] * 3
    assert dev.receive(chunk0) == Ack(0)


def test_the_phone_retries_corrupted_chunks_and_finishes() -> None:
    key = new_key()
    old, new = images(4000)
    update = full_update(key, new, "1.1.0")
    dev = device(key, old)
    link = RelayLink(payload=20, corrupt=0.2)
    sender = ChunkSender(update.envelope, update.data, PLATFORM_NOW, link, random.Random(7))
    windows = relay(sender, dev, [600.0] * 50)
    assert sender.complete
    assert sum(w.nacked for w in windows) > 20
    dev.acknowledge()
    assert dev.version == "1.1.0"


def test_the_phone_stops_at_a_pause_and_resumes_next_window() -> None:
    key = new_key()
    old, new = images(2000)
    update = full_update(key, new, "1.1.0")
    dev = device(key, old)
    broken = RelayLink(payload=20, corrupt=1.0)  # every chunk damaged
    first = ChunkSender(update.envelope, update.data, PLATFORM_NOW, broken).window(dev, 60.0)
    assert first.paused and first.sent == 4 and first.nacked == 3 and first.cursor == -1
    second = ChunkSender(update.envelope, update.data, PLATFORM_NOW).window(dev, 60.0)
    assert second.resumed_from == -1 and second.complete


def test_a_200_kb_image_through_the_phone_across_interrupted_windows() -> None:
    key = new_key()
    old = build_image("1.0.0", 200 * 1024, seed=1)
    new = build_image("1.1.0", 200 * 1024, seed=2)
    update = full_update(key, new, "1.1.0")
    dev = device(key, old)
    sender = ChunkSender(update.envelope, update.data, PLATFORM_NOW, RelayLink(payload=20))
    assert sender.count == 10_240
    # Four minutes a day near the phone at about 66 chunks a second: windows close early.
    windows = relay(sender, dev, [40.0, 35.0, 50.0, 45.0, 240.0])
    interrupted = [w for w in windows if w.interrupted]
    assert len(interrupted) >= 3
    for before, after in itertools.pairwise(windows):
        assert after.resumed_from == before.cursor  # the device's cursor, persisted
        assert after.resumed_from > -1
    assert windows[-1].complete and not windows[-1].interrupted
    assert sum(w.sent for w in windows) == sender.count  # no chunk sent twice
    assert dev.record is not None and dev.record.fw == "1.1.0"
    dev.acknowledge()
    info = dev.flash.meta.info(dev.flash.meta.active)
    assert info is not None and info.version == "1.1.0"
    installed = dev.flash.read(dev.flash.meta.active, info.size)
    assert hashlib.sha256(installed).hexdigest() == hashlib.sha256(new).hexdigest()


def test_a_transfer_offered_at_another_payload_size_starts_over() -> None:
    key = new_key()
    old, new = images(2000)
    update = full_update(key, new, "1.1.0")
    dev = device(key, old)
    ChunkSender(update.envelope, update.data, PLATFORM_NOW, RelayLink(payload=20)).window(dev, 0.5)
    assert dev.flash.meta.staging is not None and dev.flash.meta.staging.cursor >= 0
    wide = ChunkSender(update.envelope, update.data, PLATFORM_NOW, RelayLink(payload=240))
    window = wide.window(dev, 60.0)
    assert window.resumed_from == -1 and window.complete
