"""Replaying the raw stream: it rebuilds the accepted events, and it repairs a gate bug.

The raw stream keeps every record a front door took in, as it arrived. Judged
again by a gate writing to a fresh event log, it must rebuild exactly the
events the live gate accepted. And when the live gate was wrong (here a class
pack whose schema is too strict), a replay through the fixed gate accepts
exactly what was wrongly refused while everything already accepted comes back
``duplicate``: no event is ever filed twice.
"""

from __future__ import annotations

import base64
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.gate.conftest import Device
from tests.identity.conftest import Clock, open_platform
from tests.platforms import PLATFORM_ENGINES, platform_data_dir
from tether.gate.pipeline import Gate
from tether.gate.replay import replay
from tether.gate.submission import AcceptedEvent, Submission
from tether.gate.worker import GateWorker
from tether.platform import Platform
from tether.projections.projector import Projector
from tether.projections.state import DeviceStateStore
from tether.service.app import create_app
from tether.store.telemetry.base import open_telemetry_store
from tether.stream.base import StoredEntry, Stream, open_stream

NOW_S = 1_790_000_100
TS = (NOW_S - 600) * 1000
SHIPPED_CART = (resources.files("tether.classes") / "packs" / "retail-cart.yaml").read_text()
BATTERY = "battery_pct: {type: integer, minimum: 0, maximum: 100}"


def provision(p: Platform, cls: str) -> Device:
    serial = p.provisioner.provision(p.secure_elements, "acme", cls, "A", 1)[0].serial
    return Device(serial, p.secure_elements.open(serial))


def session_frame(seq: int, head: int) -> bytes:
    return (
        bytes([0x11, 0b010 if head else 0])
        + struct.pack("<IIH", seq, TS // 1000, 95)
        + bytes([25, 24, 23, 22, 1, 80])
        + struct.pack("<H", head)
    )


def forged(record: bytes) -> bytes:
    out = bytearray(record)
    out[-70] ^= 0x20  # inside the payload
    return bytes(out)


def arrive(p: Platform, subs: list[Submission]) -> None:
    """What the MQTT doors do: make records durable in the raw stream; the worker judges."""
    p.stream("raw").append([s.entry() for s in subs])
    GateWorker(p.gate_group, p.gate).drain()


def everything(stream: Stream) -> list[StoredEntry]:
    return stream.read(0, 1_000_000)


def events_by_key(stream: Stream) -> dict[str, AcceptedEvent]:
    entries = everything(stream)
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys))  # a log never holds a key twice
    return {str(e.key): AcceptedEvent.from_bytes(e.data) for e in entries}


def test_replaying_the_raw_stream_rebuilds_the_same_accepted_events(tmp_path: Path) -> None:
    clock = Clock(NOW_S)
    p = open_platform(tmp_path / "t", clock)
    try:
        p.authority.init_tenant("acme")
        brush, cart, tool = (
            provision(p, c) for c in ("oral-care-brush", "retail-cart", "power-tool")
        )
        account = p.accounts.create_account("acme", NOW_S)
        token = p.accounts.issue_token(account.id, NOW_S)
        p.accounts.bond(brush.serial, account.id, NOW_S, actor="factory", reason="first owner")
        client = TestClient(create_app(p))

        def upload(records: Sequence[bytes | str]) -> None:
            items = [
                {"device": brush.serial, "data": r if isinstance(r, str) else b64(r)}
                for r in records
            ]
            res = client.post(
                "/v1/records", json={"records": items}, headers={"Authorization": f"Bearer {token}"}
            )
            assert res.status_code == 200, res.text

        hello = brush.record(1, "hello", {"fw": "1.4.2", "capabilities": ["session-frames-v1"]})
        frames = [brush.frame(session_frame(seq, head=seq % 2 * 7)) for seq in range(2, 7)]
        upload([hello, *frames[:3], frames[1], forged(frames[3]), "%%% not base64"])
        clock.advance(3 * 86_400)  # the rest of the brush's ring, days later, partly again
        upload(frames[2:])
        cart_records = [
            cart.record(1, "health", {"battery_pct": 90, "link": "wifi"}, TS),
            cart.record(2, "scan", {"session_id": "s-00000001", "gtin": "40123455", "qty": 2}),
            cart.record(3, "scan", {"session_id": "s-00000001", "gtin": "nope", "qty": 1}),
            cart.record(4, "teleport", {}),
            cart.record(5, "health", {"battery_pct": 12}, ts=0),  # a reset clock
        ]
        tool_message = b'{"event_id": "e-1", "device_id": "%s", "battery_pct": 40}'
        arrive(
            p,
            [
                Submission(cart.serial, r, "mqtt", NOW_S * 1000 + i)
                for i, r in enumerate(cart_records)
            ]
            + [
                Submission(cart.serial, cart_records[0], "mqtt", NOW_S * 1000 + 9),
                Submission(cart.serial, forged(cart_records[1]), "mqtt", NOW_S * 1000 + 9),
                Submission(
                    tool.serial, tool_message % tool.serial.encode(), "mqtt-legacy", NOW_S * 1000
                ),
                Submission(
                    tool.serial, tool_message % tool.serial.encode(), "mqtt-legacy", NOW_S * 1000
                ),
            ],
        )
        original = events_by_key(p.stream("events"))
        assert len(original) == 6 + 3 + 1  # brush 1-6, cart 1, 2 and 5, the tool's e-1

        url = p.settings.resolved_stream_url()
        with (
            open_stream(url, "events-rebuilt") as events,
            open_stream(url, "dead-letter-rebuilt") as dead,
        ):
            gate = Gate(p.devices, events, dead, bonds=p.accounts)
            counts = replay(p.stream("raw"), gate, 0)
            rebuilt = events_by_key(events)
            assert rebuilt == original  # the same events, field for field
            raw = everything(p.stream("raw"))
            assert sum(counts.values()) == len(raw)
            assert counts == Counter(accepted=10, duplicate=4, rejected=4)
            # The dead letters are rebuilt too, except what the door refused unread.
            in_raw = {e.data for e in raw}
            live = [e for e in everything(p.stream("dead-letter")) if e.data in in_raw]
            assert sorted((e.data, e.headers["code"]) for e in everything(dead)) == sorted(
                (e.data, e.headers["code"]) for e in live
            )
            # The rebuilt log projects into the same telemetry.
            telemetry = open_telemetry_store(f"sqlite:///{tmp_path / 'telemetry-rebuilt.sqlite'}")
            state = DeviceStateStore(f"sqlite:///{tmp_path / 'state-rebuilt.sqlite'}")
            Projector(events, telemetry, state, p.catalog).drain()
            p.projector.drain()
            for d in (brush, cart, tool):
                assert telemetry.latest(d.serial, 100) == p.telemetry.latest(d.serial, 100)
            assert state.get(brush.serial) == p.device_state.get(brush.serial)
            telemetry.close()
            state.close()

        # Replayed into the live log it changes nothing: all duplicates or rejects.
        before = p.stream("events").last_offset()
        again = replay(p.stream("raw"), p.replay_gate, 0)
        assert again["accepted"] == 0 and again["duplicate"] == 10 + 4
        assert p.stream("events").last_offset() == before
    finally:
        p.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(params=PLATFORM_ENGINES)
def data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    with platform_data_dir(request, tmp_path / "t") as prepared:
        yield prepared


def test_a_gate_bug_is_repaired_by_replay_without_second_copies(
    tmp_path: Path, data_dir: Path
) -> None:
    """A too strict pack refuses good carts; a replay through the fixed pack takes exactly those.

    On both sets of engines: the raw stream, event log and stores of production
    (JetStream, PostgreSQL) behave as the embedded ones.
    """
    assert SHIPPED_CART.count(BATTERY) == 1
    strict, fixed = tmp_path / "strict", tmp_path / "fixed"
    strict.mkdir()
    fixed.mkdir()
    # The bug: the health schema caps the battery at 50 %, so full carts are refused.
    (strict / "retail-cart.yaml").write_text(
        SHIPPED_CART.replace(BATTERY, BATTERY.replace("100", "50"))
    )
    (fixed / "retail-cart.yaml").write_text(SHIPPED_CART)  # the operator's corrected pack
    arrival = NOW_S * 1000

    p = open_platform(data_dir, Clock(NOW_S), class_packs=[str(strict)])
    try:
        p.authority.init_tenant("acme")
        carts = [provision(p, "retail-cart") for _ in range(3)]
        batteries = [[30, 80, 45, 100], [95, 10], [49, 50, 51, 150]]  # 150 is truly invalid
        subs: list[Submission] = []
        for cart, levels in zip(carts, batteries, strict=True):
            for seq, level in enumerate(levels, start=1):
                record = cart.record(seq, "health", {"battery_pct": level, "link": "wifi"}, TS)
                subs.append(Submission(cart.serial, record, "mqtt", arrival + seq))
        subs.append(subs[0])  # a redelivery
        subs.append(Submission(carts[1].serial, forged(subs[4].data), "mqtt", arrival))
        arrive(p, subs)
        p.projector.drain()
        accepted_before = events_by_key(p.stream("events"))
        wrongly_refused = {
            f"{c.serial}/{seq}"
            for c, levels in zip(carts, batteries, strict=True)
            for seq, level in enumerate(levels, start=1)
            if 50 < level <= 100
        }
        assert len(wrongly_refused) == 4
        good = {
            f"{c.serial}/{seq}"
            for c, levels in zip(carts, batteries, strict=True)
            for seq, level in enumerate(levels, start=1)
            if level <= 50
        }
        assert set(accepted_before) == good
        codes = Counter(e.headers["code"] for e in everything(p.stream("dead-letter")))
        assert codes == Counter(schema_invalid=4 + 1, bad_signature=1)
    finally:
        p.close()

    # The fix is configuration: the same data, a platform with the corrected pack.
    p = open_platform(data_dir, Clock(NOW_S + 3600), class_packs=[str(fixed)])
    try:
        raw_last = p.stream("raw").last_offset()
        events_last = p.stream("events").last_offset()
        counts = replay(p.stream("raw"), p.replay_gate, 0)
        assert counts == Counter(duplicate=len(good) + 1, accepted=4, rejected=2)
        after = events_by_key(p.stream("events"))
        assert set(after) == good | wrongly_refused  # no key twice (events_by_key checks)
        repaired = p.stream("events").read(events_last, 100)
        assert {e.key for e in repaired} == wrongly_refused  # exactly the wrongly refused
        assert {k: after[k] for k in accepted_before} == accepted_before  # the rest untouched
        assert p.stream("raw").last_offset() == raw_last  # replay reads, never re-ingests
        p.projector.drain()
        for cart, levels in zip(carts, batteries, strict=True):
            stored = p.telemetry.latest(cart.serial, 100)
            expected = [seq for seq, level in enumerate(levels, start=1) if level <= 100]
            assert sorted(e.seq for e in stored if e.seq is not None) == expected
            assert p.telemetry.seqs(cart.serial) == expected
            for e in stored:
                assert e.body["battery_pct"] == levels[(e.seq or 0) - 1]
        # A second replay finds nothing left to repair.
        assert replay(p.stream("raw"), p.replay_gate, 0)["accepted"] == 0
        assert p.stream("events").last_offset() == events_last + 4
    finally:
        p.close()
