"""The simulator's device-side records, read back by the platform's own decoders.

The simulator builds records from the contract, not from the platform's code;
these tests hold the two readings of the contract together: every frame and
envelope a simulated device makes decodes, validates against its class pack,
and expands to exactly the body the simulator expects the platform to store.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.classes.catalog import ClassRuntime, load_catalog
from tether.contract.records import decode_legacy, decode_payload
from tether.devices.secure_element import SecureElement
from tether.sim import wire

CATALOG = load_catalog()
BRUSH = CATALOG.get("oral-care-brush")
CART = CATALOG.get("retail-cart")
TOOL = CATALOG.get("power-tool")
ELEMENT = SecureElement("OCB-TEST", ec.generate_private_key(ec.SECP256R1()))


def read(record: wire.Record, runtime: ClassRuntime, serial: str = "OCB-TEST") -> None:
    """The platform's decoding agrees with what the simulator says it made."""
    payload = record.payload
    if runtime.pack.signed:
        assert record.data[: len(payload)] == payload and len(record.data) == len(payload) + 64
        sig = record.data[len(payload) :]
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        ELEMENT.public_key().verify(der, payload, ec.ECDSA(hashes.SHA256()))
        env = decode_payload(payload, serial, runtime)
    else:
        assert record.data == payload
        env = decode_legacy(payload, serial, runtime)
    assert env.dedupe_key == record.key
    assert env.seq == record.seq
    assert env.type == record.type
    assert env.ts_ms == record.device_ts_ms
    assert env.body == json.loads(json.dumps(record.body))
    validate = runtime.validators[(env.type, env.v)]
    validate(env.body)


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(1, (1 << 32) - 1),
    start=st.integers(0, (1 << 32) - 1),
    duration=st.integers(0, 0xFFFF),
    coverage=st.lists(st.integers(0, 400), min_size=4, max_size=4),
    pressure=st.integers(0, 300),
    battery=st.integers(0, 100),
    head=st.one_of(st.just(0), st.integers(1, 0xFFFF)),
    alert=st.booleans(),
    synced=st.booleans(),
)
def test_session_frames_expand_to_the_body_the_simulator_expects(
    seq: int,
    start: int,
    duration: int,
    coverage: list[int],
    pressure: int,
    battery: int,
    head: int,
    alert: bool,
    synced: bool,
) -> None:
    record = wire.session_frame(
        seq, start, duration, coverage, pressure, battery, head, alert, synced, ELEMENT.sign, 0.0
    )
    assert len(record.payload) == wire.FRAME_BYTES
    assert record.body["head_id"] == (head or None)  # no head id: recorded unknown, not refused
    read(record, BRUSH)


@pytest.mark.parametrize(("event", "value"), [("battery_low", 17), ("head_attached", 40_001)])
def test_device_event_frames(event: str, value: int) -> None:
    record = wire.device_event_frame(9, 1_790_000_000, event, value, ELEMENT.sign, 0.0)
    assert len(record.payload) == wire.FRAME_BYTES
    read(record, BRUSH)


def test_bond_frames_are_filed_without_a_device_time() -> None:
    record = wire.bond_frame(12, bytes(range(14)), ELEMENT.sign, 0.0)
    assert record.device_ts_ms is None and record.body == {"challenge": bytes(range(14)).hex()}
    read(record, BRUSH)


def test_json_envelopes_of_each_cart_type() -> None:
    bodies = {
        "hello": {"fw": "3.2.0", "hw": "3", "capabilities": ["identify-v1"], "lowest_seq_held": 4},
        "boot": {"fw": "3.2.0", "slot": "a", "previous_fw": None, "rolled_back": False},
        "session-start": {"session_id": "s-0001-abcdef", "store": "north", "mode": "guest"},
        "scan": {"session_id": "s-0001-abcdef", "gtin": "4012345678901", "qty": -1},
        "identify": {"session_id": "s-0001-abcdef", "method": "loyalty", "loyalty_token": "lt"},
        "session-end": {"session_id": "s-0001-abcdef", "outcome": "complete", "payment": "x"},
        "health": {"battery_pct": 80, "link": "none", "queue_depth": 3, "zone": "car-park"},
        "fault": {"code": "scanner_jam", "severity": "warning", "detail": "cleared"},
    }
    for seq, (kind, body) in enumerate(bodies.items(), start=1):
        record = wire.json_record("OCB-TEST", seq, 1_790_000_000_123, kind, body, ELEMENT.sign, 0.0)
        read(record, CART)


def test_legacy_tool_telemetry() -> None:
    fields = {"battery_pct": 55.5, "torque_nm": 0.0, "usage_min": 12.5, "fault": None, "site": "y"}
    record = wire.legacy_record("PT-1-0000007", fields, 1_790_000_000_000, "PT-1", 0.0)
    assert record.key == "event_id:PT-1-0000007"
    read(record, TOOL, serial="PT-1")


def test_records_are_signed_once_on_first_use() -> None:
    calls: list[bytes] = []

    def signer(payload: bytes) -> bytes:
        calls.append(payload)
        return ELEMENT.sign(payload)

    record = wire.bond_frame(1, bytes(14), signer, 0.0)
    assert calls == []
    assert record.data == record.data and len(calls) == 1
