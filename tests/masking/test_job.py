"""A Polars masking run end to end: output, stamps, evidence, log, fail-closed."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tether.masking.decisions import DecisionLog
from tether.masking.errors import FreeTextError, OutputError, UnclassifiedColumnError
from tether.masking.job import LOG_NAME
from tether.masking.plan import REDACTIONS_COL, RUBRIC_COL, RUN_COL
from tether.masking.rubric import Rubric, parse_rubric
from tether.masking.salts import KeyRing, hmac_hex
from tether.masking.synth import generate, write
from tether.masking.tokens import tokenise

from .conftest import ROWS, mask, rubric_text


def test_output_layout_and_per_row_stamps(polars_out: Path, raw_dir: Path, ring: KeyRing) -> None:
    assert sorted(p.name for p in polars_out.iterdir()) == [
        "data",
        "kept_columns.md",
        "manifest.json",
    ]
    df = pl.read_parquet(polars_out / "data" / "*.parquet")
    raw = pl.read_csv(raw_dir / "tools.csv")
    assert df.height == ROWS
    assert df.columns == [*raw.columns, RUN_COL, RUBRIC_COL, REDACTIONS_COL]
    assert df[RUBRIC_COL].unique().to_list() == ["tool-telemetry@v1"]
    assert df["operator_email"][0] == hmac_hex(
        ring.salts[0].secret, raw["operator_email"][0].encode()
    )
    assert df["operator_name"][0] == tokenise(
        ring.token_key, "tool-telemetry", raw["operator_name"][0]
    )
    assert df["battery_pct"].to_list() == raw["battery_pct"].to_list()
    stamped = df.filter(pl.col(REDACTIONS_COL) != "")
    assert stamped.height > 0 and stamped["notes"].str.contains("<").all()


def test_decision_log_and_evidence(polars_out: Path) -> None:
    log = DecisionLog(polars_out.parent / LOG_NAME)
    [record] = list(log.records())
    assert record["event"] == "run" and record["rows"] == ROWS
    assert record["rubric"]["version"] == 1 and record["salt_version"] == "2026q1"
    assert record["columns"]["operator_email"] == {
        "bucket": "direct_identifier",
        "treatment": "hmac_sha256",
        "params": {},
    }
    assert record["columns"]["battery_pct"]["treatment"] == "keep"
    assert record["free_text_entities"]["notes"]["PERSON"] > 0
    assert set(record["quartile_bounds"]) == {"operator_hourly_rate"}
    assert log.check() == []
    manifest = json.loads((polars_out / "manifest.json").read_text())
    assert manifest["run_id"] == record["run_id"] and "rubric_text" in manifest
    kept = (polars_out / "kept_columns.md").read_text()
    assert "| `battery_pct` | Battery state of the tool" in kept
    assert "| `operator_email` | direct_identifier | hmac_sha256 |" in kept


def test_log_chain_detects_edits(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "log.jsonl")
    for i in range(3):
        log.append({"event": "run", "run_id": str(i)})
    assert log.check() == []
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    assert log.check() == ["line 2: chain broken (a line before it was changed or removed)"]


def test_unknown_column_stops_the_job_and_leaves_nothing(
    tmp_path: Path, rubric: Rubric, ring: KeyRing
) -> None:
    src = tmp_path / "raw.parquet"
    write(generate(20).with_columns(pl.lit("x").alias("home_wifi_ssid")), src)
    with pytest.raises(UnclassifiedColumnError, match="home_wifi_ssid"):
        mask(src, tmp_path / "out", rubric, ring)
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())
    [failed] = list(DecisionLog(tmp_path / LOG_NAME).records())
    assert failed["event"] == "run_failed" and "home_wifi_ssid" in failed["error"]


def test_free_text_failure_stops_the_job(tmp_path: Path, rubric: Rubric, ring: KeyRing) -> None:
    src = tmp_path / "raw.parquet"
    frame = generate(5)
    write(frame.with_columns(pl.lit("word " * 250_000).alias("notes")), src)
    with pytest.raises(FreeTextError):
        mask(src, tmp_path / "out", rubric, ring)
    assert not (tmp_path / "out").exists()


def test_outputs_are_never_overwritten(
    polars_out: Path, raw_dir: Path, rubric: Rubric, ring: KeyRing
) -> None:
    with pytest.raises(OutputError, match="never overwritten"):
        mask(raw_dir / "tools.csv", polars_out, rubric, ring)


def test_csv_and_parquet_sources_mask_alike(
    tmp_path: Path, raw_dir: Path, polars_out: Path, rubric: Rubric, ring: KeyRing
) -> None:
    mask(raw_dir / "tools.parquet", tmp_path / "p", rubric, ring)
    a = pl.read_parquet(polars_out / "data" / "*.parquet").drop(RUN_COL)
    b = pl.read_parquet(tmp_path / "p" / "data" / "*.parquet").drop(RUN_COL)
    assert a.equals(b)


def test_rubric_version_is_stamped(tmp_path: Path, raw_dir: Path, ring: KeyRing) -> None:
    v7 = parse_rubric(rubric_text().replace("version: 1", "version: 7"))
    mask(raw_dir / "tools.parquet", tmp_path / "o", v7, ring)
    df = pl.read_parquet(tmp_path / "o" / "data" / "*.parquet")
    assert df[RUBRIC_COL].unique().to_list() == ["tool-telemetry@v7"]
