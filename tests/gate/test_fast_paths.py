"""The gate's fast paths give exactly what the plain ones gave."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.gate.conftest import provision, submit
from tether.gate import AcceptedEvent
from tether.gate.pipeline import _der
from tether.platform import Platform

HEALTH = {"battery_pct": 80, "rssi_dbm": -60, "link": "wifi"}

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=12,
)
_maybe_int = st.none() | st.integers(min_value=-(1 << 70), max_value=1 << 70)


@st.composite
def events(draw: st.DrawFn) -> AcceptedEvent:
    odd: Any = st.sampled_from([True, 2.5, "7", [1, 2]])  # what a frame layout could yield
    return AcceptedEvent(
        tenant=draw(_text),
        serial=draw(_text),
        device_class=draw(_text),
        dedupe_key=draw(_text),
        seq=draw(_maybe_int | odd),
        type=draw(_text),
        v=draw(st.integers(min_value=1, max_value=1 << 31) | odd),
        device_ts=draw(_maybe_int | odd),
        ts=draw(st.integers() | odd),
        arrival=draw(st.integers(min_value=0)),
        clock_corrected=draw(st.booleans()),
        door=draw(_text),
        body=draw(st.dictionaries(_text, _json_values, max_size=6)),
    )


# Mostly what msgspec writes itself: ASCII (DEL now and then), floats of every size.
_ascii = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=8)
_ascii_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.floats(min_value=-1e17, max_value=1e17)
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | _ascii,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ascii, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def ascii_events(draw: st.DrawFn) -> AcceptedEvent:
    names = st.sampled_from(["acme", "RC-A-000001", "retail-cart", "7", "direct", "health"])
    return AcceptedEvent(
        tenant=draw(names),
        serial=draw(names),
        device_class=draw(names),
        dedupe_key=draw(names | _ascii),
        seq=draw(_maybe_int),
        type=draw(names),
        v=draw(st.integers(min_value=1, max_value=1 << 31)),
        device_ts=draw(_maybe_int),
        ts=draw(st.integers()),
        arrival=draw(st.integers(min_value=0)),
        clock_corrected=draw(st.booleans()),
        door=draw(names),
        body=draw(st.dictionaries(_ascii, _ascii_values, max_size=6)),
    )


@settings(max_examples=1000)
@given(events() | ascii_events())
def test_event_json_is_the_sorted_compact_json_of_its_fields(event: AcceptedEvent) -> None:
    expected = json.dumps(event.fields(), separators=(",", ":"), sort_keys=True).encode()
    assert event.to_json() == expected
    assert event.entry().data == expected


@given(st.binary(min_size=64, max_size=64), st.integers(0, 33), st.integers(0, 33))
def test_signature_der_matches_encode_dss_signature(raw: bytes, zr: int, zs: int) -> None:
    raw = bytes(zr) + raw[zr:32] + bytes(zs) + raw[32 + zs :]  # leading zero bytes too
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big")
    assert _der(raw[:64]) == encode_dss_signature(r, s)


def test_dead_letters_keep_the_batch_order_across_the_passes(platform: Platform) -> None:
    cart = provision(platform, "retail-cart")
    other = provision(platform, "retail-cart")
    batch = [
        submit(cart.serial, cart.record(1, "health", {"battery_pct": 101})),  # read: schema
        submit(other.serial, cart.record(2, "health", HEALTH)),  # signature
        submit(cart.serial, cart.record(3, "health", HEALTH)),
        submit("NOPE-1", cart.record(4, "health", HEALTH)),  # device
        submit(cart.serial, cart.frame(b"{not json")),  # read: malformed
        submit(cart.serial, cart.record(5, "health", HEALTH), door="gateway"),  # transport
    ]
    result = platform.gate.process(batch)
    expected = [
        "schema_invalid",
        "bad_signature",
        None,
        "unknown_device",
        "malformed",
        "malformed",
    ]
    assert [o.code for o in result] == expected
    assert [o.serial for o in result] == [s.serial for s in batch]
    dead = platform.stream("dead-letter").read(0, 10)
    assert [d.headers["code"] for d in dead] == [c for c in expected if c is not None]
    refused = [s.data for s, c in zip(batch, expected, strict=True) if c is not None]
    assert [d.data for d in dead] == refused
