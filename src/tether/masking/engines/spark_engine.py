"""The PySpark engine: the same masking as Polars, on a local Spark or a cluster.

Hashes and tokens are native Spark expressions (HMAC-SHA256 built from ``sha2``
over binary), generalisers are native expressions, and free text goes through
``mapInArrow`` so Presidio sees whole batches. Outputs equal the Polars engine's
cell for cell. On a cluster, executors need ``tether[mask]`` and the spaCy model
installed, and the output directory must be on storage the driver can read.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import EngineError, MissingExtraError
from tether.masking.engines.base import MaskEngine
from tether.masking.errors import FreeTextError, MaskingError
from tether.masking.freetext import get_redactor
from tether.masking.generalise import ADDRESS_PATTERN
from tether.masking.plan import REDACTIONS_COL, RUBRIC_COL, RUN_COL, MaskPlan
from tether.masking.progress import Reporter
from tether.masking.rubric import Bucket, ColumnRule
from tether.masking.sources import Source

try:
    from pyspark.sql import Column, SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("pyspark", "spark") from exc

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

BLOCK = 64


def spark_session(master: str = "local[*]", app_name: str = "tether-mask") -> SparkSession:
    """A Spark session configured the way the masking engine needs it.

    Python workers run this interpreter unless ``PYSPARK_PYTHON`` says otherwise
    (PySpark reads the variable, not the ``spark.pyspark.python`` setting, when it
    starts local workers).
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder: Any = SparkSession.builder
    session: SparkSession = (
        builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkEngine(MaskEngine):
    """Masks with PySpark, on ``master`` (``local[N]`` or a cluster URL)."""

    name = "spark"

    def __init__(self, master: str = "local[*]", spark: SparkSession | None = None) -> None:
        self.master = master
        self._spark = spark

    @property
    def spark(self) -> SparkSession:
        """The session, started on first use."""
        if self._spark is None:
            self._spark = spark_session(self.master)
        return self._spark

    def run(
        self, source: Source, plan: MaskPlan, data_dir: Path, reporter: Reporter
    ) -> dict[str, list[float]]:
        df = source.spark_frame(self.spark)
        plan.check(df.columns)
        types = {f.name: f.dataType for f in df.schema.fields}
        bounds: dict[str, list[float]] = {}
        selected: list[Column] = []
        free: list[ColumnRule] = []
        for name, rule in plan.steps(df.columns):
            c = F.col(name)
            if rule is None or rule.bucket in (Bucket.BEHAVIOURAL, Bucket.FREE_TEXT):
                selected.append(c)
                if rule is not None and rule.bucket is Bucket.FREE_TEXT:
                    free.append(rule)
            elif rule.bucket is Bucket.DIRECT:
                selected.append(_hmac_hex(plan.salt.secret, b"", c).alias(name))
            elif rule.bucket is Bucket.QUASI:
                body = F.substring(_hmac_hex(plan.token_key, plan.token_message_prefix, c), 1, 20)
                token = F.concat(F.lit(plan.token_prefix), body)
                selected.append(F.when(c.isNotNull(), token).alias(name))
            else:
                expr, b = _generalise(df, name, types[name], rule)
                selected.append(expr.alias(name))
                if b is not None:
                    bounds[name] = b
        stamps: list[Column] = []
        if REDACTIONS_COL in df.columns and plan.carry:
            old = F.col(REDACTIONS_COL)
            stamps.append(F.when(old != "", old))
            selected.append(old)
        masked = df.select(*selected)
        if free:
            masked, stamp_names = _redact(masked, free)
            stamps += [F.col(s) for s in stamp_names]
        out = masked.select(
            *[F.col(n) for n, _ in plan.steps(df.columns)],
            F.lit(plan.run_id).alias(RUN_COL),
            F.lit(plan.rubric.label).alias(RUBRIC_COL),
            (F.concat_ws(";", *stamps) if stamps else F.lit("")).alias(REDACTIONS_COL),
        )
        self._write(out, data_dir, reporter)
        return bounds

    def _write(self, out: DataFrame, data_dir: Path, reporter: Reporter) -> None:
        tracker = self.spark.sparkContext.statusTracker()
        done = threading.Event()
        with reporter.task("spark: masking and writing Parquet") as advance:

            def poll() -> None:
                seen = 0
                while not done.wait(0.5):
                    total = 0
                    for sid in tracker.getActiveStageIds():
                        info = tracker.getStageInfo(sid)
                        total += info.numCompletedTasks if info else 0
                    if total > seen:
                        advance(total - seen)
                        seen = total

            watcher = threading.Thread(target=poll, daemon=True)
            watcher.start()
            try:
                out.write.mode("errorifexists").parquet(str(data_dir.resolve()))
            except Exception as exc:
                raise _translate(exc) from exc
            finally:
                done.set()
                watcher.join()


def _translate(exc: Exception) -> MaskingError | EngineError:
    text = str(exc)
    if "FreeTextError" in text:
        return FreeTextError(
            "redacting free text failed inside a Spark task; the job stopped and wrote "
            "nothing. Check the column's values and that executors have the spaCy model."
        )
    if isinstance(exc, MaskingError):
        return exc
    first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    return EngineError(f"the Spark job failed: {first}")


def _hmac_hex(key: bytes, prefix: bytes, col: Column) -> Column:
    """HMAC-SHA256(key, prefix || utf8(col)) as lowercase hex, from Spark's sha2."""
    k = hashlib.sha256(key).digest() if len(key) > BLOCK else key
    k = k.ljust(BLOCK, b"\0")
    ipad = bytes(b ^ 0x36 for b in k)
    opad = bytes(b ^ 0x5C for b in k)
    message = F.concat(F.lit(bytearray(ipad + prefix)), col.cast("string").cast("binary"))
    inner = F.unhex(F.sha2(message, 256))
    return F.sha2(F.concat(F.lit(bytearray(opad)), inner), 256)


def _generalise(
    df: DataFrame, name: str, kind: T.DataType, rule: ColumnRule
) -> tuple[Column, list[float] | None]:
    c = F.col(name)
    if rule.method == "gps_grid":
        scale = round(1 / rule.step)
        return F.round(F.floor(c.cast("double") * scale) / scale, len(str(scale)) - 1), None
    if rule.method == "age_bin":
        return _bin(F.floor(c.try_cast("double")), rule.width), None
    if rule.method == "birth_date_bin":
        if isinstance(kind, T.DateType | T.TimestampType | T.TimestampNTZType):
            year = F.year(c)
        else:
            year = F.substring(c.cast("string"), 1, 4).try_cast("bigint")
        return _bin(year, rule.width), None
    if rule.method == "hour":
        if isinstance(kind, T.StringType):
            ts = F.try_to_timestamp(c)
        elif isinstance(kind, T.TimestampType | T.TimestampNTZType):
            ts = c.cast("timestamp")
        else:
            raise MaskingError(
                f"column {name!r} has type {kind.simpleString()}; the hour generaliser needs "
                "a timestamp or an ISO 8601 string"
            )
        return F.date_trunc("hour", ts), None
    if rule.method == "address_city_region":
        text = c.cast("string")
        pretty = F.concat(
            F.regexp_extract(text, ADDRESS_PATTERN, 1),
            F.lit(", "),
            F.regexp_extract(text, ADDRESS_PATTERN, 2),
        )
        return F.when(text.rlike(ADDRESS_PATTERN), pretty), None
    if rule.method == "quartile":
        v = c.cast("double")
        row = df.select(F.percentile(v, [0.25, 0.5, 0.75]).alias("q")).first()
        qs = row["q"] if row is not None and row["q"] is not None else [None] * 3
        b = [float(x) if x is not None else float("nan") for x in qs]
        rank = sum((F.when(v > x, 1).otherwise(0) for x in b), F.lit(0))
        label = F.concat(F.lit("Q"), (rank + 1).cast("string"))
        return F.when(v.isNull() | F.isnan(v), F.lit(None)).otherwise(label), b
    raise MaskingError(f"unknown generaliser {rule.method!r}")  # pragma: no cover


def _bin(value: Column, width: int) -> Column:
    lo = F.floor(value / width) * width
    return F.concat(lo.cast("string"), F.lit("-"), (lo + width - 1).cast("string"))


def _redact(df: DataFrame, rules: list[ColumnRule]) -> tuple[DataFrame, list[str]]:
    stamp_names = [f"__stamp_{i}" for i in range(len(rules))]
    fields = [*df.schema.fields, *(T.StructField(s, T.StringType()) for s in stamp_names)]
    specs = [(r.name, tuple(r.entities), r.threshold) for r in rules]
    fn = partial(_redact_batches, specs=specs, stamp_names=stamp_names)
    return df.mapInArrow(fn, T.StructType(fields)), stamp_names


def _redact_batches(
    batches: Iterator[Any],
    specs: list[tuple[str, tuple[str, ...], float]],
    stamp_names: list[str],
) -> Iterator[Any]:
    """Runs in Spark's Python workers: redact each batch's free-text columns."""
    import pyarrow as pa  # type: ignore[import-untyped]

    for batch in batches:
        arrays = dict(zip(batch.schema.names, batch.columns, strict=True))
        for (column, entities, threshold), stamp_name in zip(specs, stamp_names, strict=True):
            values = batch.column(column).to_pylist()
            uniq = sorted({v for v in values if v is not None})
            done = dict(zip(uniq, get_redactor(entities, threshold).redact_many(uniq), strict=True))
            arrays[column] = pa.array(
                [None if v is None else done[v].text for v in values], pa.string()
            )
            arrays[stamp_name] = pa.array(
                [None if v is None else done[v].stamp(column) for v in values], pa.string()
            )
        names = [*batch.schema.names, *stamp_names]
        yield pa.RecordBatch.from_arrays([arrays[n] for n in names], names=names)
