"""The Polars engine: the default, in-process masking engine.

Hashes, tokens and redactions are computed once per distinct value and mapped
back, so a million rows with a few thousand operators cost a few thousand HMACs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tether.errors import MissingExtraError
from tether.masking.engines.base import MaskEngine
from tether.masking.errors import MaskingError, SourceError
from tether.masking.freetext import get_redactor
from tether.masking.generalise import ADDRESS_PATTERN
from tether.masking.plan import REDACTIONS_COL, RUBRIC_COL, RUN_COL, MaskPlan
from tether.masking.progress import Reporter
from tether.masking.rubric import Bucket, ColumnRule
from tether.masking.salts import hmac_hex
from tether.masking.sources import Source

try:
    import polars as pl
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("polars", "mask") from exc

REDACT_CHUNK = 256


class PolarsEngine(MaskEngine):
    """Masks in this process with Polars."""

    name = "polars"

    def run(
        self, source: Source, plan: MaskPlan, data_dir: Path, reporter: Reporter
    ) -> dict[str, list[float]]:
        lf = source.scan()
        columns = lf.collect_schema().names()
        plan.check(columns)
        with reporter.task(f"reading {source.location}") as advance:
            try:
                df = lf.collect()
            except pl.exceptions.PolarsError as exc:
                raise SourceError(f"cannot read {source.location}: {exc}") from exc
            advance(1)
        bounds: dict[str, list[float]] = {}
        stamps: list[pl.Series] = []
        if REDACTIONS_COL in df.columns and plan.carry:
            stamps.append(df[REDACTIONS_COL].replace("", None))
        out: list[pl.Series] = []
        steps = plan.steps(columns)
        with reporter.task("masking columns", total=len(steps)) as advance:
            for name, rule in steps:
                col = df[name]
                if rule is None or rule.bucket is Bucket.BEHAVIOURAL:
                    out.append(col)
                elif rule.bucket is Bucket.DIRECT:
                    out.append(_hash(col, plan))
                elif rule.bucket is Bucket.QUASI:
                    out.append(_token(col, plan))
                elif rule.bucket is Bucket.SENSITIVE:
                    series, b = _generalise(col, rule)
                    out.append(series)
                    if b is not None:
                        bounds[name] = b
                else:
                    text, stamp = _redact(col, rule, reporter)
                    out.append(text)
                    stamps.append(stamp)
                advance(1)
        n = df.height
        meta = [
            pl.Series(RUN_COL, [plan.run_id] * n, dtype=pl.String),
            pl.Series(RUBRIC_COL, [plan.rubric.label] * n, dtype=pl.String),
            _join_stamps(stamps, n),
        ]
        data_dir.mkdir(parents=True, exist_ok=True)
        with reporter.task("writing Parquet") as advance:
            pl.DataFrame(out + meta).write_parquet(data_dir / "part-00000.parquet")
            advance(1)
        return bounds


def _map_unique(col: pl.Series, fn: Callable[[str], str], name: str) -> pl.Series:
    text = col.cast(pl.String)
    uniq = text.drop_nulls().unique()
    mapped = pl.Series([fn(v) for v in uniq.to_list()], dtype=pl.String)
    return text.replace_strict(uniq, mapped, default=None, return_dtype=pl.String).alias(name)


def _hash(col: pl.Series, plan: MaskPlan) -> pl.Series:
    secret = plan.salt.secret
    return _map_unique(col, lambda v: hmac_hex(secret, v.encode()), col.name)


def _token(col: pl.Series, plan: MaskPlan) -> pl.Series:
    key, prefix, head = plan.token_key, plan.token_message_prefix, plan.token_prefix
    return _map_unique(col, lambda v: head + hmac_hex(key, prefix + v.encode())[:20], col.name)


def _generalise(col: pl.Series, rule: ColumnRule) -> tuple[pl.Series, list[float] | None]:
    frame = col.to_frame()
    c = pl.col(col.name)
    method = rule.method
    if method == "gps_grid":
        scale = round(1 / rule.step)
        decimals = len(str(scale)) - 1
        expr = ((c.cast(pl.Float64) * scale).floor() / scale).round(decimals)
    elif method == "age_bin":
        expr = _bin(c.cast(pl.Float64, strict=False).floor().cast(pl.Int64), rule.width)
    elif method == "birth_date_bin":
        if col.dtype in (pl.Date, pl.Datetime):
            year = c.dt.year().cast(pl.Int64)
        else:
            year = c.cast(pl.String).str.slice(0, 4).cast(pl.Int64, strict=False)
        expr = _bin(year, rule.width)
    elif method == "hour":
        expr = _utc(col).dt.truncate("1h")
    elif method == "address_city_region":
        g = c.cast(pl.String).str.extract_groups(ADDRESS_PATTERN)
        expr = pl.concat_str([g.struct.field("1"), pl.lit(", "), g.struct.field("2")])
    elif method == "quartile":
        v = c.cast(pl.Float64)
        qs = [frame.select(v.quantile(q, interpolation="linear")).item() for q in (0.25, 0.5, 0.75)]
        b = [float(x) if x is not None else float("nan") for x in qs]
        rank = sum(((v > x).cast(pl.Int64) for x in b), pl.lit(0, pl.Int64))
        expr = (
            pl.when(v.is_null() | v.is_nan())
            .then(None)
            .otherwise(pl.lit("Q") + (rank + 1).cast(pl.String))
        )
        return frame.select(expr.alias(col.name)).to_series(), b
    else:  # pragma: no cover - the rubric parser rejects unknown methods
        raise MaskingError(f"unknown generaliser {method!r}")
    return frame.select(expr.alias(col.name)).to_series(), None


def _bin(lo_src: pl.Expr, width: int) -> pl.Expr:
    lo = (lo_src // width) * width
    return pl.concat_str([lo.cast(pl.String), pl.lit("-"), (lo + width - 1).cast(pl.String)])


def _utc(col: pl.Series) -> pl.Expr:
    c = pl.col(col.name)
    if col.dtype == pl.String:
        return c.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
    if isinstance(col.dtype, pl.Datetime):
        tz = col.dtype.time_zone
        moved = c.dt.convert_time_zone("UTC") if tz else c.dt.replace_time_zone("UTC")
        return moved.cast(pl.Datetime("us", "UTC"))
    raise MaskingError(
        f"column {col.name!r} has type {col.dtype}; the hour generaliser needs a timestamp "
        "or an ISO 8601 string"
    )


def _redact(col: pl.Series, rule: ColumnRule, reporter: Reporter) -> tuple[pl.Series, pl.Series]:
    redactor = get_redactor(rule.entities, rule.threshold)
    text = col.cast(pl.String)
    uniq = text.drop_nulls().unique().to_list()
    texts: list[str] = []
    stamps: list[str | None] = []
    with reporter.task(f"redacting {col.name}", total=len(uniq)) as advance:
        for start in range(0, len(uniq), REDACT_CHUNK):
            chunk = uniq[start : start + REDACT_CHUNK]
            for r in redactor.redact_many(chunk):
                texts.append(r.text)
                stamps.append(r.stamp(col.name))
            advance(len(chunk))
    keys = pl.Series(uniq, dtype=pl.String)
    red = text.replace_strict(keys, pl.Series(texts, dtype=pl.String), default=None)
    stamp = text.replace_strict(keys, pl.Series(stamps, dtype=pl.String), default=None)
    return red.alias(col.name), stamp


def _join_stamps(stamps: list[pl.Series], n: int) -> pl.Series:
    if not stamps:
        return pl.Series(REDACTIONS_COL, [""] * n, dtype=pl.String)
    frame = pl.DataFrame({f"s{i}": s for i, s in enumerate(stamps)})
    joined = frame.select(
        pl.concat_str(pl.all(), separator=";", ignore_nulls=True).alias(REDACTIONS_COL)
    )
    return joined.to_series()
