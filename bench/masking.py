"""Masking throughput: Polars and Spark engines against a row-at-a-time baseline.

    python bench/masking.py [--rows 1000000] [--notes 2000] [--no-spark]

Generates synthetic tool telemetry, masks its structured columns with the Polars
engine, the Spark engine (local[*]), and a baseline that runs one Python UDF per
column on Spark, row at a time (the shape of the seed kit's original Glue job).
Prints rows per second and each engine as a ratio of the baseline, all measured
in this run. Free-text redaction (Presidio) is measured separately, on distinct
notes, as texts per second and as a ratio of the baseline's row rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from tether.masking.engines import make_engine
from tether.masking.job import MaskRequest, run_mask
from tether.masking.keystore import new_keyring
from tether.masking.rubric import Bucket, Rubric, parse_rubric
from tether.masking.salts import KeyRing
from tether.masking.sources import open_source


def structured_rubric() -> Rubric:
    text = resources.files("tether.masking").joinpath("rubrics/tool-telemetry.yaml").read_text()
    kept = [line for line in text.splitlines() if not line.strip().startswith("notes:")]
    return parse_rubric("\n".join(kept) + "\n")


def timed(label: str, rows: int, fn: Any) -> float:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    rate = rows / seconds
    print(f"  {label:<34} {seconds:8.1f} s  {rate:12,.0f} rows/s", flush=True)
    return rate


def baseline(spark: Any, src: Path, out: Path, rubric: Rubric, ring: KeyRing) -> None:
    """One Python UDF per column, called once per row."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from tether.masking import generalise as g
    from tether.masking.salts import hmac_hex
    from tether.masking.tokens import tokenise

    df = spark.read.parquet(str(src))
    salt, key = ring.current_salt(date.today()).secret, ring.token_key
    cols = []
    for name in df.columns:
        rule = rubric.columns[name]
        c = F.col(name)
        if rule.bucket is Bucket.DIRECT:
            fn = F.udf(lambda v: None if v is None else hmac_hex(salt, str(v).encode()))
            cols.append(fn(c).alias(name))
        elif rule.bucket is Bucket.QUASI:
            fn = F.udf(lambda v: None if v is None else tokenise(key, "bench", str(v)))
            cols.append(fn(c).alias(name))
        elif rule.method == "gps_grid":
            cols.append(F.udf(g.gps_grid, T.DoubleType())(c).alias(name))
        elif rule.method == "birth_date_bin":
            cols.append(F.udf(g.birth_date_bin)(c).alias(name))
        elif rule.method == "hour":
            cols.append(F.udf(g.hour, T.TimestampType())(c).alias(name))
        elif rule.method == "address_city_region":
            cols.append(F.udf(g.address_city_region)(c).alias(name))
        elif rule.method == "quartile":
            q = df.select(F.percentile(c, [0.25, 0.5, 0.75])).first()[0]
            bounds = (q[0], q[1], q[2])
            cols.append(F.udf(lambda v, b=bounds: g.quartile(v, b))(c).alias(name))
        else:
            cols.append(c)
    df.select(*cols).write.parquet(str(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--notes", type=int, default=2_000)
    ap.add_argument("--no-spark", action="store_true")
    args = ap.parse_args()

    from tether.masking.synth import generate

    work = Path(tempfile.mkdtemp(prefix="mask-bench-"))
    print(f"generating {args.rows:,} rows in {work}", flush=True)
    frame = generate(args.rows, seed=1)
    notes = frame["notes"].drop_nulls().unique().head(args.notes).to_list()
    src = work / "tools.parquet"
    frame.drop("notes").write_parquet(src)
    rubric, ring = structured_rubric(), new_keyring("bench", date(2000, 1, 1))

    def run(engine: Any, name: str) -> None:
        req = MaskRequest(open_source(str(src)), rubric, ring, "bench", work / name, engine)
        run_mask(req)

    print("structured columns (17 of them):")
    rates = {"polars": timed("Polars engine", args.rows, lambda: run(make_engine("polars"), "p"))}
    if not args.no_spark:
        from tether.masking.engines.spark_engine import spark_session

        spark = spark_session("local[*]", "tether-mask-bench")
        spark.read.parquet(str(src)).count()  # warm the JVM before timing
        engine = make_engine("spark", spark=spark)
        rates["spark"] = timed("Spark engine (local[*])", args.rows, lambda: run(engine, "s"))
        rates["baseline"] = timed(
            "baseline: Python UDF per column",
            args.rows,
            lambda: baseline(spark, src, work / "b", rubric, ring),
        )
        print("ratios against the row-at-a-time baseline, same run:")
        for name in ("polars", "spark"):
            print(f"  {name:<10} {rates[name] / rates['baseline']:6.1f}x")

    from tether.masking.freetext import get_redactor
    from tether.masking.rubric import DEFAULT_ENTITIES

    redactor = get_redactor(DEFAULT_ENTITIES, 0.35)
    redactor.redact_many(notes[:10])  # load the model before timing
    print(f"free text ({len(notes):,} distinct notes, Presidio + spaCy):")
    rate = timed("NER redaction", len(notes), lambda: redactor.redact_many(notes))
    if "baseline" in rates:
        print(
            f"  free text is {rates['baseline'] / rate:,.0f}x slower per row than the baseline;"
            " engines redact each distinct text once"
        )


if __name__ == "__main__":
    main()
