"""The BLE link model: notifications of 20 bytes, lost ones detected, drains that resume."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.sim.ble import (
    LinkModel,
    LostNotification,
    Reassembler,
    Stored,
    drain,
    notifications,
)


def ring(first: int, count: int, size: int = 84) -> list[Stored]:
    return [(seq, bytes([seq % 256]) * size) for seq in range(first, first + count)]


def stream_of(records: list[Stored]):  # type: ignore[no-untyped-def]
    return lambda seq: [r for r in records if r[0] >= seq]


def test_a_signed_frame_takes_five_notifications_at_the_default_mtu() -> None:
    packets = notifications(ring(1, 3), 20)
    assert len(packets) == 15 and all(len(p) <= 20 for p in packets)
    assert len(notifications(ring(1, 3), 244)) == 3  # Data Length Extension: one each


@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=30), payload=st.integers(3, 244))
def test_reassembly_gives_back_every_record_exactly(sizes: list[int], payload: int) -> None:
    records = [(seq, random.Random(seq).randbytes(n)) for seq, n in enumerate(sizes, start=1)]
    phone = Reassembler()
    got = [r for p in notifications(records, payload) if (r := phone.feed(p)) is not None]
    assert got == records and not phone.incomplete


def test_a_lost_notification_is_seen_as_a_jump_in_the_index() -> None:
    packets = notifications(ring(7, 2), 20)
    phone = Reassembler()
    assert phone.feed(packets[0]) is None
    with pytest.raises(LostNotification):
        phone.feed(packets[2])


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 1 << 30),
    count=st.integers(0, 40),
    cursor=st.integers(1, 60),
    loss=st.sampled_from([0.0, 0.02, 0.2]),
    drop=st.sampled_from([0.0, 0.5, 1.0]),
    payload=st.sampled_from([20, 244]),
)
def test_a_drain_gets_a_contiguous_run_from_the_cursor_each_record_intact(
    seed: int, count: int, cursor: int, loss: float, drop: float, payload: int
) -> None:
    records = ring(5, count)
    link = LinkModel(payload=payload, loss=loss, drop=drop)
    got = drain(stream_of(records), cursor, link, random.Random(seed), window=300)
    wanted = [r for r in records if r[0] >= cursor]
    assert got.received == wanted[: len(got.received)]  # intact, in order, from the cursor on
    if got.complete:
        assert got.received == wanted
    if loss == 0 and drop == 0:
        assert got.complete and got.lost == 0 and got.rerequests == 0
    assert got.seconds == pytest.approx(got.packets / link.packets_per_second)


def test_lost_notifications_rewind_the_cursor_and_the_range_is_sent_again() -> None:
    records = ring(1, 20)
    rewound = 0
    for seed in range(50):
        got = drain(stream_of(records), 1, LinkModel(loss=0.05, drop=0), random.Random(seed), 600)
        rewound += got.rerequests
        assert got.received == records[: len(got.received)]
    assert rewound > 0


def test_a_short_window_cuts_the_drain() -> None:
    records = ring(1, 20)  # 100 notifications at 66 a second
    got = drain(stream_of(records), 1, LinkModel(loss=0, drop=0), random.Random(1), window=0.5)
    assert got.dropped and 0 < len(got.received) < 20
