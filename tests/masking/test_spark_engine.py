"""The Spark engine: same input, same output as Polars, cell for cell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tether.masking.engines import make_engine
from tether.masking.plan import RUN_COL
from tether.masking.rubric import Rubric
from tether.masking.salts import KeyRing
from tether.masking.sources import open_source
from tether.masking.verify import VerifyOptions, verify

from .conftest import mask

pytestmark = pytest.mark.timeout(600)


def frame(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "data" / "*.parquet").drop(RUN_COL).sort("event_id")


def test_spark_equals_polars_cell_for_cell(polars_out: Path, spark_out: Path) -> None:
    a, b = frame(polars_out), frame(spark_out)
    assert a.schema == b.schema
    assert a.height == b.height
    assert_frame_equal(a, b, check_exact=True)


def test_spark_output_passes_verify(spark_out: Path, raw_dir: Path, rubric: Rubric) -> None:
    opts = VerifyOptions(rubric, raw_sample=open_source(str(raw_dir / "tools.csv")))
    assert verify(spark_out, opts) == []


def test_spark_reads_parquet_sources_too(
    tmp_path: Path, raw_dir: Path, polars_out: Path, rubric: Rubric, ring: KeyRing, spark: Any
) -> None:
    out = tmp_path / "from-parquet"
    record = mask(
        raw_dir / "tools.parquet", out, rubric, ring, engine=make_engine("spark", spark=spark)
    )
    assert record["engine"] == "spark"
    assert_frame_equal(frame(out), frame(polars_out), check_exact=True)


def test_free_text_failure_inside_spark_stops_the_job(
    tmp_path: Path, rubric: Rubric, ring: KeyRing, spark: Any
) -> None:
    from tether.masking.errors import FreeTextError
    from tether.masking.synth import generate, write

    src = tmp_path / "raw.parquet"
    write(generate(3).with_columns(pl.lit("word " * 250_000).alias("notes")), src)
    with pytest.raises(FreeTextError, match="inside a Spark task"):
        mask(src, tmp_path / "out", rubric, ring, engine=make_engine("spark", spark=spark))
    assert not (tmp_path / "out").exists()
