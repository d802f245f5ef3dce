"""Randomly generated fleets over unreliable links end with each genuine record exactly once.

Hypothesis draws a small fleet (toothbrushes relayed by phones over the HTTPS
gateway door, carts on the MQTT records topic, power tools on their legacy
topic), what each device records and with which clock, and what the network
does to the uploads: batches delivered twice (a lost response, so the gateway
resends), cut off mid-batch (the rest only sent later, or lost in transit and
the whole batch resent), seq ranges drained again from flash, deliveries
reordered and delayed by days, records of the same request reordered, and
forgeries (signed records with a byte corrupted) mixed in. A model predicts the
outcome of every submission; after the projector drains, the telemetry store
must hold exactly the genuine records that were sent, each once, with the
contract's clock correction, and the device's gaps must split into lost (below
the ``lowest_seq_held`` of its newest hello) and pending.

One platform serves the module; each example provisions fresh devices (serials
are unique), so examples never see each other's records.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from tests.identity.conftest import Clock, open_platform
from tether.contract.records import EARLIEST_TS_MS, LATEST_AHEAD_MS
from tether.devices.secure_element import SecureElement
from tether.gate.submission import MQTT, MQTT_LEGACY, Submission
from tether.platform import Platform
from tether.projections.gaps import find_gaps
from tether.service.app import create_app

SECOND = 1000
DAY = 86_400 * SECOND
T0_S = 1_790_000_000  # the first upload of every example arrives here (2026-09-21)
T0 = T0_S * SECOND
PROVISIONED_S = T0_S - 90 * 86_400  # the factory line, before anything is recorded
LATEST_ARRIVAL = T0 + 40 * DAY  # no example's uploads arrive later than this
U32 = 1 << 32

BRUSH, CART, TOOL = "oral-care-brush", "retail-cart", "power-tool"
BRUSH_CAPS = ["session-frames-v1", "device-event-frames-v1", "bond-frames-v1"]
CART_CAPS = ["store-and-forward-v1", "identify-v1"]


# --- the fleet as Hypothesis draws it -----------------------------------------------------


@dataclass(frozen=True)
class Rec:
    """One record a device made: what it carries, and how the platform must file it."""

    seq: int | None  # None for the tools' legacy telemetry
    key: str  # the dedupe key as the platform files it
    kind: str  # session | device-event | hello | health | scan | fault | telemetry
    ts: int | None  # the device's clock, ms (None: the message has no time)
    body: dict[str, Any]  # the expected body in the telemetry store
    wire: dict[str, Any] = field(default_factory=dict)  # what builds the bytes


@dataclass(frozen=True)
class DeviceSpec:
    cls: str
    records: list[Rec]
    unsent: frozenset[int]  # indexes into records the device never sent (overwritten or pending)
    lowest_seq_held: int | None  # from its newest hello
    owner: int = 0  # for brushes: which account's phone relays it


@dataclass(frozen=True)
class Item:
    device: int
    record: int  # index into the device's records
    forge: tuple[int, int] | None = None  # (byte position, xor mask) of a corruption


@dataclass(frozen=True)
class Request:
    """One HTTPS request or one batch the gate worker takes from the raw stream."""

    door: str  # gateway | mqtt (carts and tools together, as the raw stream mixes them)
    account: int | None
    arrival: int  # ms, a whole second
    items: list[Item]


@dataclass(frozen=True)
class Fleet:
    devices: list[DeviceSpec]
    accounts: int
    requests: list[Request]


def clock_reading(draw: st.DrawFn, made: int, frame: bool) -> int | None:
    """The device's time for a record made at ``made``: right, skewed, reset, or far ahead."""
    kind = draw(st.sampled_from(["right", "skewed", "before-2015", "far-future"]))
    if kind == "right":
        ts = made
    elif kind == "skewed":  # up to a year slow, or up to three days fast
        ts = made + draw(st.integers(-365 * DAY, 3 * DAY))
    elif kind == "before-2015":  # a reset clock counting from 1970 (or garbage)
        ts = draw(st.integers(0 if frame else -(1 << 62), EARLIEST_TS_MS - 1))
    else:  # past anything an arrival could excuse
        ts = draw(st.integers(LATEST_ARRIVAL + 2 * DAY, (U32 - 1) * SECOND if frame else 1 << 62))
    return ts // SECOND * SECOND if frame else ts


def brush_record(draw: st.DrawFn, seq: int, made: int) -> Rec:
    ts = clock_reading(draw, made, frame=True)
    assert ts is not None
    if draw(st.booleans()):
        head = draw(st.one_of(st.just(0), st.integers(1, 0xFFFF)))
        wire = {
            "frame": 0x11,
            "alert": draw(st.booleans()),
            "synced": draw(st.booleans()),
            "duration": draw(st.integers(0, 0xFFFF)),
            "coverage": draw(st.lists(st.integers(0, 255), min_size=4, max_size=4)),
            "pressure": draw(st.integers(0, 255)),
            "battery": draw(st.integers(0, 100)),
            "head": head,
        }
        body = {
            "duration_s": wire["duration"],
            "coverage_s": wire["coverage"],
            "pressure_events": wire["pressure"],
            "battery_pct": wire["battery"],
            "head_id": head or None,  # no head id is recorded as unknown, never refused
            "pressure_alert": wire["alert"],
        }
        return Rec(seq, str(seq), "session", ts, body, wire)
    code = draw(st.sampled_from([1, 2, 3]))
    if code == 1:
        value = draw(st.integers(0, 100))
        extra, body = bytes([value]), {"event": "battery_low", "battery": value}
    elif code == 2:
        value = draw(st.integers(0, 0xFFFF))
        extra, body = struct.pack("<H", value), {"event": "head_attached", "head_id": value}
    else:
        major, minor, patch = draw(st.tuples(*[st.integers(0, 255)] * 3))
        extra = bytes([major, minor, patch])
        body = {"event": "firmware_updated", "major": major, "minor": minor, "patch": patch}
    wire = {"frame": 0x21, "code": code, "extra": extra}
    return Rec(seq, str(seq), "device-event", ts, body, wire)


def cart_record(draw: st.DrawFn, seq: int, made: int) -> Rec:
    ts = clock_reading(draw, made, frame=False)
    kind = draw(st.sampled_from(["health", "scan", "fault"]))
    if kind == "health":
        body: dict[str, Any] = {
            "battery_pct": draw(st.integers(0, 100)),
            "link": draw(st.sampled_from(["wifi", "lte-m", "none"])),
            "queue_depth": draw(st.integers(0, 10_000)),
        }
        if draw(st.booleans()):
            body["firmware_note"] = draw(st.text(max_size=8))  # unknown fields are kept
    elif kind == "scan":
        body = {
            "session_id": f"sess-{draw(st.integers(0, 10**6)):08d}",
            "gtin": draw(st.from_regex(r"[0-9]{8,14}", fullmatch=True)),
            "qty": draw(st.integers(-99, 99)),
        }
    else:
        body = {"code": f"E{draw(st.integers(0, 999))}", "severity": "warning"}
    return Rec(seq, str(seq), kind, ts, body)


def tool_record(draw: st.DrawFn, index: int, made: int) -> Rec:
    ts = clock_reading(draw, made, frame=False) if draw(st.booleans()) else None
    event_id: str | int = f"evt-{index:04d}" if draw(st.booleans()) else index
    body = {
        "battery_pct": draw(st.integers(0, 100)),
        "torque_nm": draw(st.integers(0, 2000)),
        "usage_min": draw(st.integers(0, 10_000)),
        "fault": draw(st.sampled_from([None, "E42", "OVERHEAT"])),
        "site": draw(st.sampled_from(["north-yard", "dock-7"])),
    }
    return Rec(None, f"event_id:{event_id}", "telemetry", ts, body, {"event_id": event_id})


def hello(seq: int, made: int, caps: list[str], lowest: int) -> Rec:
    body = {"fw": "1.4.2", "hw": "B", "capabilities": [*caps, "teleport-v9"]}
    return Rec(seq, str(seq), "hello", made, {**body, "lowest_seq_held": lowest})


@st.composite
def device_specs(draw: st.DrawFn, cls: str, accounts: int) -> DeviceSpec:
    """What one device recorded, which of it it never sent, and its newest hello."""
    count = draw(st.integers(1, 8))
    made = [T0 - draw(st.integers(0, 30 * DAY))]  # when each record was made, truly
    while len(made) < count:
        made.append(made[-1] + draw(st.integers(SECOND, 6 * 3600 * SECOND)))
    if cls == TOOL:  # no seq, no hello: each message carries its own event id
        records = [tool_record(draw, i, m) for i, m in enumerate(made)]
        unsent = draw(st.sets(st.integers(0, count - 1)))
        return DeviceSpec(cls, records, frozenset(unsent), None)
    # A device with history counts from far beyond 1; frames carry a uint32 seq.
    base = draw(st.one_of(st.just(1), st.integers(2, U32 - 20)))
    make = brush_record if cls == BRUSH else cart_record
    caps = BRUSH_CAPS if cls == BRUSH else CART_CAPS
    records = [make(draw, base + i, m) for i, m in enumerate(made)]
    newest = base + count
    lowest = draw(st.integers(base, newest))
    if count > 1 and draw(st.booleans()):  # an older hello, from an earlier sync
        at = draw(st.integers(0, count - 2))
        records[at] = hello(base + at, made[at], caps, draw(st.integers(1, lowest)))
    records.append(hello(newest, made[-1] + SECOND, caps, lowest))  # always sent: it opens a sync
    unsent = draw(st.sets(st.integers(0, count - 1)))
    owner = draw(st.integers(0, accounts - 1))
    return DeviceSpec(cls, records, frozenset(unsent), lowest, owner)


@st.composite
def deliveries(draw: st.DrawFn, index: int, spec: DeviceSpec) -> list[list[Item]]:
    """What the links make of one device's uploads, before they are interleaved with others."""
    sendable = [i for i in range(len(spec.records)) if i not in spec.unsent]
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(sendable) - 1)), max_size=3)))
    batches = [sendable[a:b] for a, b in zip([0, *cuts], [*cuts, len(sendable)], strict=True)]
    out: list[list[int]] = []
    for batch in filter(None, batches):
        fate = draw(st.sampled_from(["once", "response-lost", "cut-later", "cut-lost-resent"]))
        cut = draw(st.integers(0, len(batch)))
        if fate == "once":
            out.append(batch)
        elif fate == "response-lost":  # the gateway never heard back, so it sends again
            out += [batch, batch]
        elif fate == "cut-later":  # the link dropped mid-batch; the rest goes in a later sync
            out += [batch[:cut], batch[cut:]]
        else:  # the rest was lost in transit; the whole batch is sent again
            out += [batch[:cut], batch]
    for _ in range(draw(st.integers(0, 2)) if sendable else 0):  # a range drained again
        a = draw(st.integers(0, len(sendable) - 1))
        b = draw(st.integers(a, len(sendable) - 1))
        out.append(sendable[a : b + 1])
    items = [[Item(index, r) for r in batch] for batch in out if batch]
    if spec.cls != TOOL:  # forgeries: a signed record (sent or not) with one byte corrupted
        for _ in range(draw(st.integers(0, 3))):
            forged = Item(
                index,
                draw(st.integers(0, len(spec.records) - 1)),
                (draw(st.integers(0, 1 << 16)), draw(st.integers(1, 255))),
            )
            into_upload = draw(st.booleans())
            if items and into_upload:
                target = items[draw(st.integers(0, len(items) - 1))]
                target.insert(draw(st.integers(0, len(target))), forged)
            else:
                items.append([forged])
    shuffled: list[list[Item]] = []
    for upload in items:  # a phone may upload a batch in any order
        shuffle = draw(st.booleans())
        shuffled.append(list(draw(st.permutations(upload))) if shuffle else upload)
    return shuffled


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    accounts = draw(st.integers(1, 2))
    classes = (
        [BRUSH] * draw(st.integers(1, 3))
        + [CART] * draw(st.integers(0, 2))
        + [TOOL] * draw(st.integers(0, 2))
    )
    specs = [draw(device_specs(cls, accounts)) for cls in classes]
    batches = [b for i, spec in enumerate(specs) for b in draw(deliveries(i, spec))]
    requests: list[Request] = []
    arrival = T0
    for batch in draw(st.permutations(batches)):  # links reorder whole uploads
        spec = specs[batch[0].device]
        door, account = ("gateway", spec.owner) if spec.cls == BRUSH else (MQTT, None)
        last = requests[-1] if requests else None
        if last and (last.door, last.account) == (door, account) and draw(st.booleans()):
            last.items.extend(batch)  # one request, one gate batch, for several uploads
            continue
        arrival += SECOND * draw(
            st.one_of(st.integers(0, 120), st.integers(0, 6 * 86_400))  # or days later
        )
        requests.append(Request(door, account, min(arrival, LATEST_ARRIVAL), list(batch)))
    return Fleet(specs, accounts, requests)


# --- the platform, the devices and their bytes --------------------------------------------


@dataclass(repr=False)
class Env:
    platform: Platform
    clock: Clock
    client: TestClient

    def __repr__(self) -> str:
        return "Env(...)"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    clock = Clock(PROVISIONED_S - 86_400)
    root: Path = tmp_path_factory.mktemp("fleet")
    p = open_platform(
        root / "t",
        clock,
        ingest={"requests_per_second": 1e6, "burst": 1e6},
        # What this test checks does not depend on each append reaching the disk platter.
        stream_url=f"sqlite:///{root / 'stream.sqlite'}?synchronous=normal",
    )
    p.authority.init_tenant("acme")
    with TestClient(create_app(p)) as client:  # one event loop for the module's requests
        yield Env(p, clock, client)
    p.close()


def frame_bytes(rec: Rec) -> bytes:
    w, seq = rec.wire, rec.seq
    assert seq is not None and rec.ts is not None
    if w["frame"] == 0x11:
        flags = w["alert"] | (bool(w["head"]) << 1) | (w["synced"] << 2)
        return (
            bytes([0x11, flags])
            + struct.pack("<IIH", seq, rec.ts // SECOND, w["duration"])
            + bytes(w["coverage"])
            + bytes([w["pressure"], w["battery"]])
            + struct.pack("<H", w["head"])
        )
    tail: bytes = w["extra"].ljust(10, b"\0")
    return bytes([0x21, w["code"]]) + struct.pack("<II", seq, rec.ts // SECOND) + tail


def record_bytes(serial: str, element: SecureElement, rec: Rec) -> bytes:
    """The bytes the device sends; a signed record is signed once and resent as is."""
    if rec.kind == "telemetry":  # the tools' flat, unsigned JSON
        message = {"event_id": rec.wire["event_id"], "device_id": serial, **rec.body}
        if rec.ts is not None:
            message["ts"] = rec.ts
        return json.dumps(message).encode()
    if "frame" in rec.wire:
        payload = frame_bytes(rec)
    else:
        envelope = {"device": serial, "seq": rec.seq, "ts": rec.ts, "type": rec.kind, "v": 1}
        payload = json.dumps({**envelope, "body": rec.body}).encode()
    return payload + element.sign(payload)


def forge(data: bytes, position: int, mask: int) -> bytes:
    out = bytearray(data)
    out[position % len(out)] ^= mask
    return bytes(out)


@dataclass
class Landed:
    """The model's account of one record the platform must hold."""

    arrival: int


# --- the property -------------------------------------------------------------------------


@pytest.mark.timeout(900)  # a failure shrinks for minutes before it reports
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(fleet=fleets())
def test_the_stores_end_with_each_genuine_record_once(env: Env, fleet: Fleet) -> None:
    p, clock = env.platform, env.clock
    clock.now = PROVISIONED_S
    serials: list[str] = []
    elements: list[SecureElement] = []
    for spec in fleet.devices:
        serial = p.provisioner.provision(p.secure_elements, "acme", spec.cls, "B", 1)[0].serial
        serials.append(serial)
        elements.append(p.secure_elements.open(serial))
    tokens = []
    for _ in range(fleet.accounts):
        account = p.accounts.create_account("acme", clock.now)
        tokens.append((account.id, p.accounts.issue_token(account.id, clock.now)))
    for serial, spec in zip(serials, fleet.devices, strict=True):
        if spec.cls == BRUSH:
            p.accounts.bond(serial, tokens[spec.owner][0], clock.now, "factory", "first owner")
    data = [
        [record_bytes(serials[i], elements[i], rec) for rec in spec.records]
        for i, spec in enumerate(fleet.devices)
    ]
    dead_letters_before = p.stream("dead-letter").last_offset()

    landed: dict[tuple[int, str], Landed] = {}
    forged_count = 0
    for request in fleet.requests:
        clock.now = request.arrival / SECOND
        expected: list[tuple[str, int | None, str, str | None]] = []
        for item in request.items:
            rec = fleet.devices[item.device].records[item.record]
            serial = serials[item.device]
            if item.forge is not None:
                forged_count += 1
                expected.append((serial, None, "rejected", "bad_signature"))
            elif (item.device, rec.key) in landed:
                expected.append((serial, rec.seq, "duplicate", None))
            else:
                landed[(item.device, rec.key)] = Landed(request.arrival)
                expected.append((serial, rec.seq, "accepted", None))
        wire = [
            data[it.device][it.record]
            if it.forge is None
            else forge(data[it.device][it.record], *it.forge)
            for it in request.items
        ]
        if request.door == "gateway":
            assert request.account is not None
            records = [
                {"device": serials[it.device], "data": base64.b64encode(d).decode()}
                for it, d in zip(request.items, wire, strict=True)
            ]
            res = env.client.post(
                "/v1/records",
                json={"records": records},
                headers={"Authorization": f"Bearer {tokens[request.account][1]}"},
            )
            assert res.status_code == 200, res.text
            got = [(r["device"], r["seq"], r["outcome"], r["code"]) for r in res.json()["results"]]
        else:
            subs = [
                Submission(
                    serials[it.device],
                    d,
                    MQTT_LEGACY if fleet.devices[it.device].cls == TOOL else MQTT,
                    request.arrival,
                )
                for it, d in zip(request.items, wire, strict=True)
            ]
            got = [(o.serial, o.seq, o.outcome, o.code) for o in p.gate.process(subs)]
        assert got == expected
        for outcome in {g[2] if g[3] is None else g[3] for g in got}:
            note(f"{request.door} request with a {outcome} record")

    p.projector.drain()

    dead = p.stream("dead-letter").read(dead_letters_before, 100_000)
    assert len([e for e in dead if e.headers["serial"] in serials]) == forged_count
    for i, (serial, spec) in enumerate(zip(serials, fleet.devices, strict=True)):
        sent = {rec.key: rec for j, rec in enumerate(spec.records) if j not in spec.unsent}
        stored = p.telemetry.latest(serial, 10_000)
        assert sorted(e.dedupe_key for e in stored) == sorted(sent)  # each genuine record once
        for event in stored:
            rec = sent[event.dedupe_key]
            arrival = landed[(i, rec.key)].arrival
            believed = rec.ts is not None and EARLIEST_TS_MS <= rec.ts <= arrival + LATEST_AHEAD_MS
            assert (event.type, event.v, event.seq) == (rec.kind, 1, rec.seq)
            assert event.body == rec.body  # the genuine body, never a forgery's
            assert event.arrival == arrival
            assert event.clock_corrected is not believed
            if not believed:
                note(f"a {rec.kind} record with its clock corrected")
            assert event.ts == (rec.ts if believed else arrival)
            assert event.device_ts == (rec.ts if rec.ts is not None else arrival)
        if spec.cls == TOOL:
            assert {e.site for e in stored} <= {"north-yard", "dock-7"}
            continue
        seqs = p.telemetry.seqs(serial)
        assert seqs == sorted(r.seq for r in sent.values() if r.seq is not None)
        state = p.device_state.get(serial)
        assert state is not None and state.lowest_seq_held == spec.lowest_seq_held
        assert spec.lowest_seq_held is not None
        gaps = find_gaps(seqs, state.lowest_seq_held)
        missing = [spec.records[j].seq for j in sorted(spec.unsent)]
        first = spec.records[0].seq
        assert first is not None
        lost_expected = _ranges([s for s in missing if s is not None and s < spec.lowest_seq_held])
        if first > 1:  # everything before the device's first record here is below its ring
            lost_expected = [(1, first - 1), *lost_expected]
        pending_expected = _ranges(
            [s for s in missing if s is not None and s >= spec.lowest_seq_held]
        )
        note(f"gaps: {'lost' if gaps.lost else 'none lost'}, {len(gaps.pending)} pending")
        assert _merge(gaps.lost) == _merge(lost_expected)
        assert _merge(gaps.pending) == _merge(pending_expected)


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in sorted(seqs):
        if out and out[-1][1] == s - 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and out[-1][1] + 1 >= a:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
