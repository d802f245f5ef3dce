"""The brush and phone models on their own: ring, clock, battery, hello, drains, cursors."""

from __future__ import annotations

import random
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.devices.secure_element import SecureElement
from tether.projections.gaps import find_gaps
from tether.sim.ble import LinkModel
from tether.sim.brush import Brush, BrushHabits
from tether.sim.gateway import Answer, Upload
from tether.sim.ledger import Ledger, ranges
from tether.sim.phone import Phone, PhoneHabits

T0 = 1_800_000_000.0
DAY = 86400.0
HABITS = BrushHabits(0.9, 0.8, 0.1, 120.0, "when-low", off_brand_heads=False)
KEY = ec.generate_private_key(ec.SECP256R1())


def brush(slots: int = 5, habits: BrushHabits = HABITS) -> tuple[Brush, Ledger]:
    ledger = Ledger()
    made = Brush(
        "OCB-1", SecureElement("OCB-1", KEY), random.Random(1), habits, slots, ledger, T0,
        "1.4.2", "B", ["session-frames-v1"],
    )  # fmt: skip
    made.battery = 90.0
    return made, ledger


def test_a_full_ring_overwrites_its_oldest_record_and_says_so_in_its_hello() -> None:
    b, ledger = brush(slots=5)
    for day in range(7):
        assert b.brush(T0 + day * DAY) is not None
    assert [r.seq for r in b.ring] == [3, 4, 5, 6, 7]
    assert ledger.books["OCB-1"].evicted == {1, 2}
    hello = b.hello(T0 + 8 * DAY)
    assert hello.seq == 8 and hello.body["lowest_seq_held"] == 4  # the hello pushed 3 out
    assert [r.seq for r in b.ring] == [4, 5, 6, 7, 8] and b.lowest_seq_held == 4
    assert [seq for seq, _ in b.stream_from(6)] == [6, 7, 8]
    assert [seq for seq, _ in b.stream_from(1)] == [4, 5, 6, 7, 8]


def test_no_rtc_the_clock_drifts_resets_to_1970_and_resyncs_on_phone_contact() -> None:
    b, _ = brush()
    b.rtc.drift = 200e-6
    first = b.brush(T0 + 10 * DAY)
    assert first is not None and first.device_ts_ms is not None
    assert 170 < first.device_ts_ms / 1000 - (T0 + 10 * DAY) < 175  # 17 s a day fast
    b.battery = 0.5
    b.brush(T0 + 11 * DAY)  # runs flat
    assert b.dead and b.brush(T0 + 12 * DAY) is None
    b.charge(T0 + 13 * DAY)  # back on power: the clock starts from the epoch
    reset = b.brush(T0 + 13 * DAY + 3600)
    assert reset is not None and reset.device_ts_ms == 3600 * 1000
    assert not (reset.payload[1] & 4)  # the frame says: clock not synced since boot
    b.set_time(T0 + 14 * DAY)
    synced = b.brush(T0 + 14 * DAY + 60)
    assert synced is not None and synced.payload[1] & 4
    assert synced.device_ts_ms == (T0 + 14 * DAY + 60) * 1000


def test_battery_low_is_an_event_once_when_crossing_twenty_percent() -> None:
    b, ledger = brush(slots=50)
    b.battery = 23.0
    b.brush(T0)
    b.brush(T0 + 3600)
    kinds = [r.body.get("event") for r in b.ring if r.type == "device-event"]
    assert kinds == ["battery_low"]
    assert ledger.counts["brush.battery_low"] == 1


def test_off_brand_heads_read_no_id() -> None:
    b, _ = brush(habits=BrushHabits(1, 1, 0, 120, "dock", off_brand_heads=True))
    b.new_head(T0)
    session = b.brush(T0 + 60)
    assert session is not None and session.body["head_id"] is None
    assert all(r.type != "device-event" for r in b.ring)  # nothing to announce


class FakeGateway:
    """The door, answering every record once accepted, then duplicate."""

    def __init__(self) -> None:
        self.held: set[tuple[str, int | None]] = set()
        self.requests: list[list[int | None]] = []

    def challenge(self, token: str, serial: str) -> str:
        return "ab" * 14

    def upload(self, token: str, records: Sequence[tuple[str, bytes]]) -> Upload:
        answers = []
        seqs = []
        for serial, data in records:
            seq = int.from_bytes(data[2:6], "little") if data[:1] != b"{" else None
            if seq is None:
                seq = int(data.split(b'"seq":')[1].split(b",")[0])
            seqs.append(seq)
            outcome = "duplicate" if (serial, seq) in self.held else "accepted"
            self.held.add((serial, seq))
            answers.append(Answer(serial, seq, outcome, None))
        self.requests.append(seqs)
        return Upload(200, answers)


def phone(gateway: FakeGateway, ledger: Ledger, **habits: float) -> Phone:
    base = dict(near=1, app_open=1, elsewhere=0, online=1, response_lost=0, forgets=0)
    chosen = PhoneHabits(**{**base, "cursor_lost": 0.0, **habits})  # type: ignore[arg-type]
    link = LinkModel(loss=0, drop=0)
    return Phone("p", random.Random(3), chosen, link, gateway, ledger, "tok")  # type: ignore[arg-type]


def test_a_phone_pairs_by_button_hold_then_drains_only_what_is_new() -> None:
    b, ledger = brush(slots=20)
    door = FakeGateway()
    p = phone(door, ledger)
    for i in range(3):
        b.brush(T0 + i * 3600)
    p.contact(T0 + 4 * 3600, [b], 300)
    assert b.bonded_phone == "p" and p.paired == {"OCB-1"}
    # The bond record at once; then the hello, and the ring from the start (the bond again).
    assert door.requests == [[4], [5, 1, 2, 3, 4]]
    assert p.cursors == {"OCB-1": 6} and not p.queue
    b.brush(T0 + DAY)
    p.contact(T0 + DAY + 600, [b], 300)
    assert door.requests[-1] == [7, 6]  # the hello, and only what came after the cursor
    assert ledger.books["OCB-1"].delivered == {str(s) for s in range(1, 8)}


def test_an_answer_that_never_came_back_means_the_same_records_again() -> None:
    b, ledger = brush(slots=20)
    door = FakeGateway()
    p = phone(door, ledger, response_lost=1.0)
    p.paired.add("OCB-1")
    b.brush(T0)
    p.contact(T0 + 600, [b], 300)
    p.habits = PhoneHabits(1, 1, 0, 1, 0, 0, 0)
    p.contact(T0 + 1200, [b], 300)
    assert door.requests == [[2, 1], [2, 1, 3]]  # all again, and the new hello
    assert p.cursors == {"OCB-1": 4}


@settings(max_examples=300)
@given(
    seqs=st.sets(st.integers(1, 80), max_size=60),
    lowest=st.one_of(st.none(), st.integers(1, 100)),
)
def test_the_ledgers_gaps_read_the_contract_as_the_platform_does(
    seqs: set[int], lowest: int | None
) -> None:
    """Two readings of section 5 written apart; they must agree on every input."""
    ledger = Ledger()
    book = ledger.device("D", "oral-care-brush")
    from tether.sim.wire import json_record

    for seq in seqs:
        body = {"fw": "1", "capabilities": [], "lowest_seq_held": lowest or 1}
        record = json_record("D", seq, 0, "hello" if lowest else "x", body, None, 0.0)
        ledger.made("D", record)
        book.delivered.add(record.key)
    book.newest_hello = (max(seqs), lowest) if seqs and lowest else None
    expected = book.expected()
    platform = find_gaps(sorted(seqs), lowest if seqs else None)
    if seqs:
        assert expected.lost == platform.lost and expected.pending == platform.pending
    else:
        assert expected.lost == [] and expected.pending == []
    assert ranges([1, 2, 3, 7, 9, 10]) == [(1, 3), (7, 7), (9, 10)]
