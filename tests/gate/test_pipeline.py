from __future__ import annotations

import struct

from tests.gate.conftest import provision, submit
from tests.identity.conftest import Clock
from tether.gate import AcceptedEvent
from tether.platform import Platform

HEALTH = {"battery_pct": 80, "rssi_dbm": -60, "link": "wifi"}


def outcomes(p: Platform, *subs: object) -> list[tuple[str, str | None]]:
    return [(o.outcome, o.code) for o in p.gate.process(list(subs))]  # type: ignore[arg-type]


def test_accept_then_duplicate(platform: Platform) -> None:
    cart = provision(platform, "retail-cart")
    rec = cart.record(1, "health", HEALTH)
    assert outcomes(platform, submit(cart.serial, rec)) == [("accepted", None)]
    assert outcomes(platform, submit(cart.serial, rec), submit(cart.serial, rec)) == [
        ("duplicate", None),
        ("duplicate", None),
    ]
    events = platform.stream("events").read(0, 10)
    assert len(events) == 1
    event = AcceptedEvent.from_bytes(events[0].data)
    assert (event.serial, event.seq, event.type, event.tenant, event.device_class) == (
        cart.serial,
        1,
        "health",
        "acme",
        "retail-cart",
    )
    assert event.body == HEALTH and not event.clock_corrected


def test_one_bad_record_never_fails_the_others(platform: Platform) -> None:
    cart = provision(platform, "retail-cart")
    good1, good2 = cart.record(1, "health", HEALTH), cart.record(3, "health", HEALTH)
    forged = bytearray(cart.record(2, "health", HEALTH))
    forged[5] ^= 1
    result = outcomes(
        platform,
        submit(cart.serial, good1),
        submit(cart.serial, bytes(forged)),
        submit(cart.serial, good2),
    )
    assert result == [("accepted", None), ("rejected", "bad_signature"), ("accepted", None)]
    dead = platform.stream("dead-letter").read(0, 10)
    assert [d.headers["code"] for d in dead] == ["bad_signature"]


def test_every_gate_reject_code(platform: Platform) -> None:
    cart = provision(platform, "retail-cart")
    other = provision(platform, "retail-cart")
    platform.authority.init_tenant("globex")
    revoked = provision(platform, "retail-cart")
    platform.revoke(revoked.serial, "stolen")
    cases = {
        "unknown_device": submit("NOPE-1", cart.record(1, "health", HEALTH)),
        "device_mismatch": submit(
            other.serial, other.frame(cart.record(1, "health", HEALTH, signed=False))
        ),
        "bad_signature": submit(other.serial, cart.record(1, "health", HEALTH)),
        "cert_revoked": submit(revoked.serial, revoked.record(1, "health", HEALTH)),
        "too_large": submit(cart.serial, cart.record(2, "fault", {"code": "x" * 17000})),
        "malformed": submit(cart.serial, cart.frame(b"{not json")),
        "unknown_type": submit(cart.serial, cart.record(3, "teleport", {})),
        "schema_invalid": submit(cart.serial, cart.record(4, "health", {"battery_pct": 101})),
    }
    result = platform.gate.process(list(cases.values()))
    assert {code: (o.outcome, o.code) for code, o in zip(cases, result, strict=True)} == {
        code: ("rejected", code) for code in cases
    }
    assert result[-1].seq == 4  # a decoded record's rejection names its seq
    assert result[2].seq is None  # a forged one does not


def test_unsigned_class_over_the_gateway_is_refused(platform: Platform) -> None:
    tool = provision(platform, "power-tool")
    rec = tool.record(1, "hello", {"fw": "1.0.0", "capabilities": []}, signed=False)
    assert outcomes(platform, submit(tool.serial, rec, door="mqtt")) == [("accepted", None)]
    assert outcomes(platform, submit(tool.serial, rec, door="gateway", account="acc_x"))[0] == (
        "rejected",
        "malformed",
    )


def test_clock_correction_and_seq_order(platform: Platform) -> None:
    cart = provision(platform, "retail-cart")
    arrival = 1_790_000_100_000
    subs = [
        submit(cart.serial, cart.record(2, "health", HEALTH, ts=0), arrival=arrival),
        submit(
            cart.serial,
            cart.record(1, "health", HEALTH, ts=arrival + 2 * 86_400_000),
            arrival=arrival,
        ),
    ]
    result = platform.gate.process(subs)
    assert all(o.outcome == "accepted" and o.event and o.event.clock_corrected for o in result)
    assert all(o.event and o.event.ts == arrival for o in result)


def test_brush_frames_expand_and_legacy_tool_telemetry_dedupes_on_event_id(
    platform: Platform,
) -> None:
    tool = provision(platform, "power-tool")
    legacy = b'{"event_id":"e-1","device_id":"%s","ts":1790000000000,"battery_pct":71}' % (
        tool.serial.encode()
    )
    result = outcomes(
        platform,
        submit(tool.serial, legacy, door="mqtt-legacy"),
        submit(tool.serial, legacy, door="mqtt-legacy"),
    )
    assert result == [("accepted", None), ("duplicate", None)]
    brush = provision(platform, "oral-care-brush")
    frame = (
        bytes([0x11, 0b100])
        + struct.pack("<IIH", 5, 1_789_999_000, 95)
        + bytes([20, 25, 25, 25, 0, 66])
        + struct.pack("<H", 0)
    )
    out = platform.gate.process([submit(brush.serial, brush.frame(frame), door="direct")])
    assert out[0].outcome == "rejected"  # brushes only send through a phone
    assert out[0].code == "malformed"


def test_a_device_signature_cannot_be_replayed_under_another_serial(platform: Platform) -> None:
    a, b = provision(platform, "retail-cart"), provision(platform, "retail-cart")
    rec = a.record(1, "health", HEALTH)
    assert outcomes(platform, submit(b.serial, rec)) == [("rejected", "bad_signature")]


def test_expired_and_untrusted_certificates(platform: Platform, clock: Clock) -> None:
    cart = provision(platform, "retail-cart")
    late = 1_790_000_100_000 + 11 * 365 * 86_400_000
    assert outcomes(
        platform, submit(cart.serial, cart.record(1, "health", HEALTH), arrival=late)
    ) == [("rejected", "cert_expired")]
    platform.authority.rotate("acme", overlap_days=1)
    clock.advance(2 * 86400)
    platform.authority.retire_expired()
    assert outcomes(platform, submit(cart.serial, cart.record(2, "health", HEALTH))) == [
        ("rejected", "untrusted_cert")
    ]
    fresh = provision(platform, "retail-cart")
    now_ms = int(clock() * 1000)  # judged at arrival: it arrives after it was made
    assert outcomes(
        platform, submit(fresh.serial, fresh.record(1, "health", HEALTH), arrival=now_ms)
    ) == [("accepted", None)]
