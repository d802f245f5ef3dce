from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.classes import load_catalog
from tether.contract.jsonform import plain
from tether.contract.records import (
    EARLIEST_TS_MS,
    corrected_time,
    decode_json,
    decode_json_plain,
    decode_legacy,
    decode_payload,
    read_json,
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


# The fast JSON path against the plain decoder: the same envelope or the same refusal.
_EDGES = [0, -1, 1, (1 << 31) - 1, 1 << 31, (1 << 63) - 1, 1 << 63, -(1 << 63), -(1 << 63) - 1]
_odd = st.integers() | st.sampled_from(
    [*_EDGES, (1 << 64) - 1, 1 << 64, True, False, 1.0, 5.5, None, "5", [1]]
)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 80), max_value=1 << 80)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@st.composite
def _json_payloads(draw: st.DrawFn) -> bytes:
    """Envelopes mostly valid field by field, then odd JSON and odd bytes.

    Hypothesis leans to small draws: 0.0 from ``rng.random()`` takes the common path.
    """
    rng = draw(st.randoms(use_true_random=False))

    def pick(valid: object, odd: st.SearchStrategy[object]) -> object:
        return valid if rng.random() < 0.8 else draw(odd)

    fields: dict[str, object] = {
        "device": pick("RC-1", st.sampled_from(["RC-2", "", 5, None])),
        "seq": pick(rng.randrange(1 << 64), _odd),
        "ts": pick(rng.randrange(-(1 << 63), 1 << 63), _odd),
        "type": pick(rng.choice(["health", "é"]), st.sampled_from(["", 3, None])),
        "v": pick(rng.randrange(1, 1 << 31), _odd),
        "body": pick(draw(st.dictionaries(st.text(max_size=5), _json_values)), _json_values),
    }
    drop = rng.sample(sorted(fields), 1) if rng.random() > 0.9 else []
    doc = {k: v for k, v in fields.items() if k not in drop}
    if rng.random() > 0.7:
        doc["extra"] = draw(_json_values)
    text = json.dumps(
        doc,
        ensure_ascii=rng.random() < 0.5,
        separators=rng.choice([(",", ":"), (", ", ": ")]),
    )
    if rng.random() > 0.9:  # a key twice: the last one counts
        text = text[:-1] + f',"{rng.choice(sorted(fields))}":{json.dumps(draw(_odd))}' + "}"
    data = text.encode()
    if rng.random() > 0.9:  # a byte changed, dropped or added
        at = rng.randrange(len(data) + 1)
        data = data[:at] + rng.randbytes(rng.randrange(3)) + data[at + 1 :]
    return data


def _decoded(fn: object, data: bytes) -> str:
    try:
        return repr(fn(data, "RC-1"))  # type: ignore[operator]
    except RecordRejectedError as exc:
        return repr(("rejected", exc.code, exc.detail, exc.seq))


@settings(max_examples=1000, deadline=None)
@given(_json_payloads() | st.binary(max_size=40).map(lambda b: b"{" + b))
def test_the_fast_json_path_decodes_as_the_plain_decoder(data: bytes) -> None:
    # repr tells 1 from 1.0 and 0.0 from -0.0, which == would not
    assert _decoded(decode_json, data) == _decoded(decode_json_plain, data)
    with contextlib.suppress(RecordRejectedError):
        seq, ts, _, v, body, plain_values = read_json(data, "RC-1")
        if plain_values:  # what the decoder vouches for, the walk confirms
            assert plain(body) and type(seq) is int and type(ts) is int and type(v) is int
