"""The telemetry store as a masking source: a real SQLite store, both engines, DuckDB.

The store is filled with ``TelemetryEvent``s through ``open_telemetry_store``:
power tools of tenant ``acme`` on three job sites, some with firmware that adds
operator fields and free-text notes, plus hello and boot events, another
tenant and another class that the selection must leave out.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from tether.masking.cli import app
from tether.masking.engines import make_engine
from tether.masking.errors import SourceError, UnclassifiedColumnError
from tether.masking.job import MaskRequest, run_mask
from tether.masking.plan import RUN_COL
from tether.masking.rubric import Rubric, load_rubric
from tether.masking.salts import KeyRing, hmac_hex
from tether.masking.sources import open_source
from tether.masking.telemetry_source import ENVELOPE, TelemetrySource, read_events
from tether.masking.tokens import tokenise
from tether.masking.verify import VerifyOptions, verify
from tether.store.telemetry import TelemetryEvent, TelemetryStore, open_telemetry_store

from .conftest import DAY

pytestmark = pytest.mark.timeout(600)

DOMAIN = "tool-telemetry"
RUBRIC = Path(__file__).parents[2] / "src/tether/masking/rubrics/power-tool-store.yaml"
DOCS = Path(__file__).parents[2] / "docs/masking.md"
T0 = int(datetime(2026, 3, 14, 7, 0, tzinfo=UTC).timestamp() * 1000)
SITES = ("North Yard", "Harbor Pier 4", "Elm Street Depot")
OPERATORS = (
    ("EMP-000101", "maria.garcia@acme-build.com", "Maria Garcia"),
    ("EMP-000102", "james.smith@example.com", "James Smith"),
    ("EMP-000103", "wei.chen@example.org", "Wei Chen"),
)
NOTES = (
    "Battery swapped, no issues.",
    "Clutch slipping under load; sent for service.",
    "Call Maria Garcia on (415) 555-0134 about the torque readings.",
    "Email james.smith@example.com when the replacement arrives.",
    "Delivered to 12 Elm Road, Dayton, OH 45402 for Wei Chen.",
    "Left in the site office overnight.",
)
TOOLS = 6
READINGS = 30
POWER_TOOL_BODY = [
    "battery_pct",
    "body_fw",
    "capabilities",
    "fault",
    "hw",
    "notes",
    "operator_email",
    "operator_id",
    "operator_name",
    "previous_fw",
    "rolled_back",
    "slot",
    "torque_nm",
    "usage_min",
]


def ev(
    serial: str,
    i: int,
    ts: int,
    body: dict[str, Any],
    *,
    tenant: str = "acme",
    cls: str = "power-tool",
    type_: str = "telemetry",
    site: str | None = None,
    fw: str | None = "2.0.3",
    seq: int | None = None,
) -> TelemetryEvent:
    return TelemetryEvent(
        tenant=tenant,
        serial=serial,
        device_class=cls,
        site=site,
        dedupe_key=f"event_id:{serial}-{i}" if seq is None else str(seq),
        seq=seq,
        type=type_,
        v=1,
        device_ts=ts - (90_000 if i % 7 == 0 else 0),
        ts=ts,
        arrival=ts + 40,
        clock_corrected=i % 7 == 0,
        fw=fw,
        body=body,
    )


def power_tool_events() -> list[TelemetryEvent]:
    """Tenant acme's power-tool events: what the export must contain, and nothing else."""
    out: list[TelemetryEvent] = []
    for t in range(TOOLS):
        serial = f"PT-{t + 1:07d}"
        out.append(
            ev(
                serial,
                0,
                T0 - 60_000 + t,
                {"fw": "2.0.3", "hw": "rev-b", "capabilities": []},
                type_="hello",
            )
        )
        for i in range(1, READINGS + 1):
            site = SITES[(t + i // 10) % len(SITES)]
            battery: int | float = 100 - 3 * i + t
            if t == 5:
                battery = battery - 0.5  # this tool's firmware reports halves
            body: dict[str, Any] = {
                "battery_pct": battery,
                "torque_nm": round(20 + 1.7 * i + t, 2),
                "usage_min": round(0.5 * i, 1),
                "fault": "E-204" if i % 11 == 0 else None,
                "site": site,
            }
            if t < len(OPERATORS):  # newer firmware tags the operator
                op_id, email, name = OPERATORS[t]
                body.update(operator_id=op_id, operator_email=email, operator_name=name)
                if i % 4 == 0:
                    body["notes"] = NOTES[(i // 4 + t) % len(NOTES)]
            out.append(ev(serial, i, T0 + i * 661_000 + t * 17_000, body, site=site))
    # One tool updated: its boot reports the new firmware before the device state does.
    boot = {"fw": "2.1.0", "slot": "b", "previous_fw": "2.0.3", "rolled_back": False}
    out.append(ev("PT-0000002", 99, T0 + 3 * 3_600_000 + 5, boot, type_="boot"))
    return out


def other_events() -> list[TelemetryEvent]:
    """Events the selection must leave out: another tenant, another class."""
    leak = {"battery_pct": 50, "operator_email": "someone@globex.example", "site": "Globex Yard"}
    return [
        ev("PT-9000001", 1, T0 + 1000, leak, tenant="globex", site="Globex Yard"),
        ev("CART-0001", 1, T0 + 2000, {"sku": "A-1", "store": "s1"}, cls="retail-cart", seq=1),
    ]


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("store") / "telemetry.sqlite"
    url = f"sqlite:///{path}"
    with open_telemetry_store(url) as store:
        assert all(store.write(power_tool_events() + other_events()))
    return url


def spec(url: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"tenant": "acme", **params}.items())
    return f"telemetry:{url}?{query}"


@pytest.fixture(scope="module")
def rubric() -> Rubric:
    return load_rubric(RUBRIC)


def masked(
    url: str, out: Path, rubric: Rubric, ring: KeyRing, engine: Any = None, **params: str
) -> dict[str, Any]:
    req = MaskRequest(
        source=open_source(spec(url, **{"class": "power-tool", **params})),
        rubric=rubric,
        keys=ring,
        domain=DOMAIN,
        out=out,
        engine=engine or make_engine("polars"),
        at=DAY,
    )
    return run_mask(req)


@pytest.fixture(scope="module")
def polars_export(
    tmp_path_factory: pytest.TempPathFactory, store_url: str, rubric: Rubric, ring: KeyRing
) -> Path:
    out = tmp_path_factory.mktemp("polars") / "acme-tools"
    masked(store_url, out, rubric, ring)
    return out


@pytest.fixture(scope="module")
def spark_export(
    tmp_path_factory: pytest.TempPathFactory,
    store_url: str,
    rubric: Rubric,
    ring: KeyRing,
    spark: Any,
) -> Path:
    out = tmp_path_factory.mktemp("spark") / "acme-tools"
    masked(store_url, out, rubric, ring, engine=make_engine("spark", spark=spark))
    return out


def read(out: Path) -> pl.DataFrame:
    df = pl.read_parquet(out / "data" / "*.parquet").drop(RUN_COL)
    return df.sort(df.columns)


# The source: spec, rows, schema


def test_rows_are_the_tenants_class_events_with_the_envelope_then_the_body(store_url: str) -> None:
    src = open_source(spec(store_url, **{"class": "power-tool"}))
    assert isinstance(src, TelemetrySource)
    expected = power_tool_events()
    df = src.scan().collect()
    assert df.columns == [*ENVELOPE, *POWER_TOOL_BODY]
    assert src.columns() == df.columns
    assert df.height == len(expected)
    assert df.schema["event_ts"] == pl.Datetime("us", "UTC")
    assert df.schema["seq"] == pl.Int64 and df.schema["clock_corrected"] == pl.Boolean
    assert df.schema["battery_pct"] == pl.Float64  # ints and halves: one float column
    assert df.schema["rolled_back"] == pl.Boolean
    # One row per event, in the store's time order; nothing of globex or the carts.
    by_time = sorted(expected, key=lambda e: (e.ts, e.serial))
    assert df["serial"].to_list() == [e.serial for e in by_time]
    assert df["event_ts"].to_list() == [datetime.fromtimestamp(e.ts / 1000, UTC) for e in by_time]
    assert df["site"].to_list() == [e.site for e in by_time]
    assert df["operator_email"].drop_nulls().unique().sort().to_list() == sorted(
        o[1] for o in OPERATORS
    )
    assert df["capabilities"].drop_nulls().unique().to_list() == ["[]"]
    assert df.filter(pl.col("type") == "boot")["body_fw"].to_list() == ["2.1.0"]
    # boot's fw differs from the envelope's, so the field is kept, on every event with it.
    hellos = df.filter(pl.col("type") == "hello")
    assert hellos["body_fw"].to_list() == hellos["fw"].to_list() == ["2.0.3"] * TOOLS
    assert "body_site" not in df.columns  # the body's site is the envelope's
    assert src.describe() == {
        "kind": "telemetry",
        "location": src.location,
        "store": store_url,
        "tenant": "acme",
        "class": "power-tool",
        "site": None,
        "type": None,
        "since": None,
        "until": None,
    }


def test_type_since_until_and_site_narrow_the_selection(store_url: str) -> None:
    since = datetime.fromtimestamp((T0 + 3_600_000) / 1000, UTC)
    until = datetime.fromtimestamp((T0 + 2 * 3_600_000) / 1000, UTC)
    src = open_source(
        spec(
            store_url,
            **{"class": "power-tool", "type": "telemetry,boot", "site": "North%20Yard"},
            since=since.isoformat().replace("+00:00", "Z"),
            until=until.strftime("%Y-%m-%dT%H:%M:%S"),  # no offset: UTC
        )
    )
    df = src.scan().collect()
    want = [
        e
        for e in power_tool_events()
        if e.type in ("telemetry", "boot")
        and e.site == "North Yard"
        and T0 + 3_600_000 <= e.ts < T0 + 2 * 3_600_000
    ]
    assert 0 < df.height == len(want)
    assert set(df["type"]) == {"telemetry"} and set(df["site"]) == {"North Yard"}
    # A narrower selection keeps the columns it has in the same order.
    body = [c for c in df.columns if c not in ENVELOPE]
    assert body == sorted(body) and "hw" not in body


def test_body_fields_union_typed_and_page_independent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'edge.sqlite'}"
    bodies: list[tuple[str | None, dict[str, Any]]] = [
        (
            "Yard A",
            {
                "site": "Yard A",
                "type": "telemetry",
                "nested": {"b": 1, "a": [1, "é"]},
                "mixed": 5,
                "flag": True,
                "big": 2**70,
                "only_null": None,
            },
        ),
        ("Yard A", {"site": "Yard B", "mixed": "five", "flag": False, "x": 1}),
        (None, {"mixed": 2.5, "nested": "plain", "x": 2.0}),
        ("Yard C", {"x": 3}),
    ]
    with open_telemetry_store(url) as store:
        store.write(
            ev("SN-1", i, T0 + i, body, site=site, cls="kiosk")
            for i, (site, body) in enumerate(bodies)
        )
    frames = [
        TelemetrySource(f"{url}?tenant=acme", page_size=n).scan().collect() for n in (2, 3, 100)
    ]
    for other in frames[1:]:
        assert_frame_equal(frames[0], other, check_exact=True)
    df = frames[0]
    assert df.columns == [
        *ENVELOPE,
        "big",
        "body_site",
        "flag",
        "mixed",
        "nested",
        "only_null",
        "x",
    ]
    assert df["mixed"].to_list() == ["5", "five", "2.5", None]
    assert df["nested"].to_list() == ['{"a":[1,"é"],"b":1}', None, "plain", None]
    assert df["flag"].to_list() == [True, False, None, None]
    assert df["big"].to_list() == [str(2**70), None, None, None]
    assert df["only_null"].dtype == pl.String and df["only_null"].null_count() == 4
    assert df["x"].dtype == pl.Float64 and df["x"].to_list() == [None, 1.0, 2.0, 3.0]
    # The body's site differs from the envelope's once: kept, for every event that has it.
    assert df["body_site"].to_list() == ["Yard A", "Yard B", None, None]
    assert "body_type" not in df.columns  # equal to the envelope's type on every event


def test_pages_never_exceed_the_limit_and_read_every_event_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'burst.sqlite'}"
    # 23 events in one millisecond (a burst replayed after an outage), others around it.
    times = [T0 + k for k in range(5)] + [T0 + 10] * 23 + [T0 + 20 + k for k in range(6)]
    events = [ev(f"SN-{i:03d}", i, ts, {"n": i}, cls="kiosk") for i, ts in enumerate(times)]
    with open_telemetry_store(url) as store:
        store.write(events)
        calls: list[tuple[int, int]] = []
        real = store.range

        def spy(*args: Any, **kw: Any) -> list[TelemetryEvent]:
            got = real(*args, **kw)
            calls.append((kw["limit"], len(got)))
            return got

        monkeypatch.setattr(store, "range", spy)
        sel = TelemetrySource(f"{url}?tenant=acme", page_size=4).selection
        pages = list(read_events(store, sel, page_size=4))
    got = [e for page in pages for e in page]
    assert sorted(e.dedupe_key for e in got) == sorted(e.dedupe_key for e in events)
    assert [e.ts for e in got] == sorted(times)
    assert all(n <= limit for limit, n in calls)
    assert {limit for limit, _ in calls} == {4, 16, 64}  # pages, then the burst on its own
    assert max(len(p) for p in pages) == 23


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("", "no store URL"),
        ("sqlite:///x.sqlite", "tenant= is missing"),
        ("sqlite:///x.sqlite?tenant=", "tenant= is empty"),
        ("sqlite:///x.sqlite?tenant=a&tenant=b", "tenant= is given twice"),
        ("just-a-path?tenant=a", "not a store URL"),
        ("sqlite:///x.sqlite?tenant=a&since=last-week", "since='last-week' is not an ISO 8601"),
        ("sqlite:///x.sqlite?tenant=a&since=2026-03-02&until=2026-03-01", "is not before"),
    ],
)
def test_bad_specs_are_refused_with_the_form_to_use(location: str, message: str) -> None:
    with pytest.raises(SourceError, match=re.escape(message)) as info:
        open_source(f"telemetry:{location}")
    assert "telemetry:<store URL>?tenant=T" in str(info.value)


def test_unreachable_stores_and_empty_selections_are_clear(tmp_path: Path, store_url: str) -> None:
    missing = tmp_path / "nowhere" / "telemetry.sqlite"
    with pytest.raises(SourceError, match=r"no telemetry store at .*nowhere"):
        open_source(f"telemetry:sqlite:///{missing}?tenant=acme").columns()
    assert not missing.parent.exists()  # the source never creates a store
    with pytest.raises(SourceError, match="cannot reach the telemetry store") as info:
        open_source("telemetry:postgresql://reader:s3cret@127.0.0.1:1/tele?tenant=acme").columns()
    assert "s3cret" not in str(info.value)
    with pytest.raises(SourceError, match="unknown scheme 'mysql'") as info:
        open_source("telemetry:mysql://reader:s3cret@db/tele?tenant=acme").columns()
    assert "s3cret" not in str(info.value)
    not_db = tmp_path / "notes.sqlite"
    not_db.write_text("not a database " * 100)
    with pytest.raises(SourceError, match="cannot open the telemetry store"):
        open_source(f"telemetry:sqlite:///{not_db}?tenant=acme").columns()
    with pytest.raises(SourceError, match="unknown parameter 'clas'"):
        open_source(f"telemetry:{store_url}?tenant=acme&clas=power-tool").columns()
    with pytest.raises(SourceError, match=r"no events match tenant 'acem' .*holds 0 event"):
        open_source(f"telemetry:{store_url}?tenant=acem").columns()
    src = open_source(f"telemetry:{store_url}?tenant=acme&synchronous=normal&class=kiosk")
    with pytest.raises(SourceError, match=r"class 'kiosk'.*holds \d+ event"):
        src.columns()


# Masking: both engines, verify, DuckDB


def test_a_body_field_the_rubric_does_not_name_stops_the_export(
    tmp_path: Path, store_url: str, rubric: Rubric, ring: KeyRing
) -> None:
    url = f"sqlite:///{tmp_path / 'new-fw.sqlite'}"
    with open_telemetry_store(url) as store:
        store.write([ev("PT-1", 1, T0, {"battery_pct": 80, "pin": "4711", "site": "Yard"})])
    with pytest.raises(UnclassifiedColumnError, match="'pin'"):
        masked(url, tmp_path / "out", rubric, ring)
    assert not (tmp_path / "out").exists()


def test_both_engines_mask_the_store_alike_and_the_output_verifies(
    polars_export: Path, spark_export: Path, store_url: str, rubric: Rubric, ring: KeyRing
) -> None:
    a, b = read(polars_export), read(spark_export)
    assert a.schema == b.schema
    assert_frame_equal(a, b, check_exact=True)
    raw = open_source(spec(store_url, **{"class": "power-tool"}))
    for out in (polars_export, spark_export):
        assert verify(out, VerifyOptions(rubric, raw_sample=raw)) == []
    # What the rubric did, checked against the raw events.
    salt = ring.select(DAY).secret
    serials = {hmac_hex(salt, f"PT-{t + 1:07d}".encode()) for t in range(TOOLS)}
    assert set(a["serial"]) == serials
    assert set(a["site"].drop_nulls()) == {tokenise(ring.token_key, DOMAIN, s) for s in SITES}
    assert set(a["operator_email"].drop_nulls()) == {
        hmac_hex(salt, o[1].encode()) for o in OPERATORS
    }
    assert (a["event_ts"].dt.minute() == 0).all() and (a["event_ts"].dt.second() == 0).all()
    notes = " ".join(a["notes"].drop_nulls())
    assert "<PERSON>" in notes and "Maria" not in notes and "555-0134" not in notes
    assert a["battery_pct"].sum() == pytest.approx(
        sum(e.body["battery_pct"] for e in power_tool_events() if "battery_pct" in e.body)
    )


def docs_query(data_glob: str) -> str:
    """The DuckDB query of docs/masking.md's telemetry-store section, on ``data_glob``."""
    text = DOCS.read_text()
    section = text[text.index("## Masking the telemetry store") :]
    sql = re.search(r"```sql\n(.*?)```", section, re.S)
    assert sql is not None, "the docs section shows no SQL query"
    shown = "exports/acme-tools-2026-03/data/*.parquet"
    assert shown in sql.group(1)
    return sql.group(1).replace(shown, data_glob)


def test_the_docs_duckdb_query_runs_on_each_engines_export(
    polars_export: Path, spark_export: Path, ring: KeyRing
) -> None:
    expected_groups: dict[tuple[str, datetime], list[TelemetryEvent]] = defaultdict(list)
    for e in power_tool_events():
        if e.type == "telemetry" and e.site is not None:
            hour = datetime.fromtimestamp(e.ts // 3_600_000 * 3_600, UTC)
            expected_groups[(tokenise(ring.token_key, DOMAIN, e.site), hour)].append(e)
    expected = sorted(
        (
            site,
            hour,
            len({e.serial for e in es}),
            len(es),
            sum(e.body["battery_pct"] for e in es) / len(es),
        )
        for (site, hour), es in expected_groups.items()
    )
    expected.sort(key=lambda r: (r[1], r[0]))
    for out in (polars_export, spark_export):
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            rows = con.execute(docs_query(str(out / "data" / "*.parquet"))).fetchall()
        got = [(s, h.astimezone(UTC), tools, n) for s, h, tools, n, _ in rows]
        assert got == [row[:4] for row in expected]
        # The query rounds to 0.1 (half away from zero); the raw mean is within 0.05.
        for (*_, avg), (*_, mean) in zip(rows, expected, strict=True):
            assert abs(float(avg) - mean) <= 0.0501


# The CLI, as an operator runs it


def test_tether_mask_run_accepts_a_telemetry_spec(tmp_path: Path, store_url: str) -> None:
    runner = CliRunner()

    def ok(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    (tmp_path / "rubric.yaml").write_text(ok("example-rubric", "--name", "power-tool-store"))
    ok("keys", "init", str(tmp_path / "keys.yaml"), "--version", "q1", "--valid-from", "2026-01-01")
    source = spec(store_url, **{"class": "power-tool", "type": "telemetry"})
    out = ok(
        "run",
        source,
        "-r",
        str(tmp_path / "rubric.yaml"),
        "-k",
        f"file:{tmp_path / 'keys.yaml'}",
        "-d",
        DOMAIN,
        "-o",
        str(tmp_path / "export"),
    )
    assert f"masked {TOOLS * READINGS} rows" in out
    assert "ok" in ok(
        "verify",
        str(tmp_path / "export"),
        "-r",
        str(tmp_path / "rubric.yaml"),
        "--raw-sample",
        source,
    )
    [record] = [json.loads(line) for line in (tmp_path / "mask-decisions.jsonl").open()]
    assert record["source"]["kind"] == "telemetry" and record["source"]["type"] == ["telemetry"]
    assert record["columns"]["serial"]["treatment"] == "hmac_sha256"
    assert record["columns"]["site"]["treatment"] == "domain_token"
    kept = (tmp_path / "export" / "kept_columns.md").read_text()
    assert "| `battery_pct` | Battery state" in kept
    assert "| `serial` | direct_identifier | hmac_sha256 |" in kept


def test_store_only_read(store_url: str) -> None:
    """Exporting leaves the store as it was."""
    with open_telemetry_store(store_url) as store:
        before = store.count()
    TelemetrySource(f"{store_url}?tenant=acme").frame()
    with open_telemetry_store(store_url) as store:
        assert store.count() == before == len(power_tool_events()) + len(other_events())
        assert isinstance(store, TelemetryStore)
