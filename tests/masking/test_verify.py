"""verify passes honest outputs and names each deliberate breakage."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from tether.masking.rubric import Rubric
from tether.masking.salts import KeyRing
from tether.masking.sources import open_source
from tether.masking.synth import generate, write
from tether.masking.verify import VerifyOptions, Violation, verify

from .conftest import mask


def checks(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(v.check, v.column) for v in violations}


def broken(src: Path, dst: Path, change: Callable[[pl.DataFrame], pl.DataFrame]) -> Path:
    shutil.copytree(src, dst)
    part = dst / "data" / "part-00000.parquet"
    change(pl.read_parquet(part)).write_parquet(part)
    return dst


def test_generated_dataset_masked_by_polars_passes(
    polars_out: Path, raw_dir: Path, rubric: Rubric
) -> None:
    opts = VerifyOptions(rubric, raw_sample=open_source(str(raw_dir / "tools.csv")))
    assert verify(polars_out, opts) == []


def test_raw_email_left_in_is_named(
    polars_out: Path, raw_dir: Path, tmp_path: Path, rubric: Rubric
) -> None:
    raw = pl.read_csv(raw_dir / "tools.csv")
    out = broken(polars_out, tmp_path / "b", lambda df: df.with_columns(raw["operator_email"]))
    found = verify(out, VerifyOptions(rubric, raw_sample=open_source(str(raw_dir / "tools.csv"))))
    assert ("digest-form", "operator_email") in checks(found)
    assert ("digest-raw", "operator_email") in checks(found)
    text = "\n".join(str(v) for v in found)
    assert raw["operator_email"][0] not in text  # violations never print raw values


def test_email_and_phone_in_a_kept_column_are_named(
    polars_out: Path, tmp_path: Path, rubric: Rubric
) -> None:
    def leak(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(
            pl.when(pl.int_range(pl.len()) == 3)
            .then(pl.lit("E-101 call lee@example.com"))
            .when(pl.int_range(pl.len()) == 4)
            .then(pl.lit("E-101 ring (415) 201-3344"))
            .otherwise(pl.col("error_code"))
            .alias("error_code")
        )

    found = verify(broken(polars_out, tmp_path / "b", leak), VerifyOptions(rubric, ner_sample=0))
    assert {("email", "error_code"), ("phone", "error_code")} <= checks(found)


def test_column_missing_from_rubric_is_named(
    polars_out: Path, tmp_path: Path, rubric: Rubric
) -> None:
    out = broken(polars_out, tmp_path / "b", lambda df: df.with_columns(pl.lit(1).alias("pin")))
    assert ("unclassified", "pin") in checks(verify(out, VerifyOptions(rubric, ner_sample=0)))


def test_unsalted_hash_and_off_grid_and_raw_text_are_named(
    polars_out: Path, raw_dir: Path, tmp_path: Path, rubric: Rubric
) -> None:
    raw = pl.read_csv(raw_dir / "tools.csv")
    plain = [hashlib.sha256(v.encode()).hexdigest() for v in raw["tool_serial"].to_list()]

    def damage(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(
            pl.Series("tool_serial", plain), raw["gps_lat"], raw["notes"], raw["recorded_at"]
        )

    out = broken(polars_out, tmp_path / "b", damage)
    found = verify(out, VerifyOptions(rubric, raw_sample=open_source(str(raw_dir / "tools.csv"))))
    assert {
        ("digest-unsalted", "tool_serial"),
        ("generalised", "gps_lat"),
        ("generalised", "recorded_at"),
        ("free-text-entities", "notes"),
        ("email", "notes"),
        ("phone", "notes"),
    } <= checks(found)


def test_two_domains_sharing_a_namespace_are_named(
    tmp_path: Path, polars_out: Path, rubric: Rubric, ring: KeyRing
) -> None:
    # Support tickets about the same operators (same names, other columns).
    tickets = tmp_path / "tickets.parquet"
    write(generate(60, seed=11), tickets)
    good = tmp_path / "tickets-good"
    mask(tickets, good, rubric, ring, domain="support-tickets")
    assert verify(good, VerifyOptions(rubric, ner_sample=0, against=(polars_out,))) == []
    # The production bug: the second pipeline reused the first one's namespace.
    bad = tmp_path / "tickets-bad"
    mask(tickets, bad, rubric, ring, domain="tool-telemetry")
    found = verify(
        bad, VerifyOptions(rubric, domain="support-tickets", ner_sample=0, against=(polars_out,))
    )
    assert {("domain", ""), ("token-domain", "operator_name"), ("cross-domain", "")} <= checks(
        found
    )
    cross = next(v for v in found if v.check == "cross-domain")
    assert "share a token namespace" in cross.detail


@pytest.mark.parametrize(
    "column", ["operator_birth_date", "operator_hourly_rate", "job_site_address"]
)
def test_raw_sensitive_values_are_named(
    column: str, polars_out: Path, raw_dir: Path, tmp_path: Path, rubric: Rubric
) -> None:
    raw = pl.read_csv(raw_dir / "tools.csv")
    out = broken(
        polars_out, tmp_path / "b", lambda df: df.with_columns(raw[column].cast(pl.String))
    )
    assert ("generalised", column) in checks(verify(out, VerifyOptions(rubric, ner_sample=0)))
