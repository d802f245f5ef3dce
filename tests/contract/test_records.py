from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.classes import load_catalog
from tether.contract.records import (
    EARLIEST_TS_MS,
    corrected_time,
    decode_legacy,
    decode_payload,
    split_record,
)
from tether.errors import RecordRejectedError

CATALOG = load_catalog()
CART = CATALOG.get("retail-cart")
TOOL = CATALOG.get("power-tool")


def payload(**over: object) -> bytes:
    base: dict[str, object] = {
        "device": "RC-1",
        "seq": 5,
        "ts": 1_750_000_000_000,
        "type": "health",
        "v": 1,
        "body": {"battery_pct": 50},
    }
    base.update(over)
    return json.dumps(base).encode()


def code(fn: object, *args: object) -> str:
    with pytest.raises(RecordRejectedError) as err:
        fn(*args)  # type: ignore[operator]
    return err.value.code


def test_split_record() -> None:
    assert split_record(b"x" * 70, signed=True) == (b"x" * 6, b"x" * 64)
    assert split_record(b"{}", signed=False) == (b"{}", None)
    assert code(split_record, b"x" * 64, True) == "malformed"
    assert code(split_record, b"", False) == "malformed"
    assert code(split_record, b"x" * (16 * 1024 + 1), True) == "too_large"
    assert split_record(b"x" * (16 * 1024), True)[1] == b"x" * 64


def test_json_envelope() -> None:
    env = decode_payload(payload(body={"battery_pct": 50, "extra": [1]}), "RC-1", CART)
    assert (env.seq, env.type, env.v, env.dedupe_key) == (5, "health", 1, "5")
    assert env.body == {"battery_pct": 50, "extra": [1]}  # unknown body fields are kept


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (payload(device="RC-2"), "device_mismatch"),
        (payload(device=7), "malformed"),
        (payload(seq=-1), "malformed"),
        (payload(seq=2**64), "malformed"),
        (payload(seq=True), "malformed"),
        (payload(seq="5"), "malformed"),
        (payload(ts=1.5), "malformed"),
        (payload(type=""), "malformed"),
        (payload(v=0), "malformed"),
        (payload(body=[1]), "malformed"),
        (b"{not json", "malformed"),
        (b"{\xff}", "malformed"),
        (b"[1]", "unknown_type"),
        (
            b'{"a":' + b"[" * 15000 + b"]" * 15000 + b"}",
            "malformed",
        ),  # nested too deeply  # not JSON and no frames in this class
    ],
)
def test_bad_envelopes(raw: bytes, expected: str) -> None:
    assert code(decode_payload, raw, "RC-1", CART) == expected


def test_legacy_payloads_dedupe_on_their_own_key() -> None:
    raw = json.dumps(
        {
            "event_id": "e-1",
            "device_id": "PT-1",
            "ts": 1_750_000_000_000,
            "battery_pct": 71,
            "torque_nm": 54.5,
            "site": "north-yard",
        }
    ).encode()
    env = decode_legacy(raw, "PT-1", TOOL)
    assert (env.seq, env.type, env.dedupe_key, env.ts_ms) == (
        None,
        "telemetry",
        "event_id:e-1",
        1_750_000_000_000,
    )
    assert env.body == {"battery_pct": 71, "torque_nm": 54.5, "site": "north-yard"}
    assert code(decode_legacy, raw, "PT-2", TOOL) == "device_mismatch"
    assert code(decode_legacy, b'{"battery_pct": 1}', "PT-1", TOOL) == "malformed"
    assert code(decode_legacy, raw, "RC-1", CART) == "malformed"


def test_clock_correction() -> None:
    arrival = 1_750_000_000_000
    assert corrected_time(arrival - 5000, arrival) == (arrival - 5000, False)
    assert corrected_time(EARLIEST_TS_MS - 1, arrival) == (arrival, True)
    assert corrected_time(0, arrival) == (arrival, True)  # reset to 1970
    assert corrected_time(arrival + 24 * 3600 * 1000 + 1, arrival) == (arrival, True)
    assert corrected_time(arrival + 24 * 3600 * 1000, arrival) == (arrival + 86_400_000, False)
    assert corrected_time(None, arrival) == (arrival, True)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_fuzzed_payloads_only_raise_typed_rejections(data: bytes) -> None:
    for runtime in CATALOG:
        with contextlib.suppress(RecordRejectedError):
            decode_payload(data, "X-1", runtime)
        if runtime.pack.legacy:
            with contextlib.suppress(RecordRejectedError):
                decode_legacy(data, "X-1", runtime)


def test_a_million_fuzzed_inputs_raise_nothing_but_typed_rejections() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "fuzz_decoders.py"
    res = subprocess.run(
        [sys.executable, str(script), "--count", "1000000"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "nothing else escaped" in res.stdout
