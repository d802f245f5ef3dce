"""``tether mask verify``: check a masked dataset against the rubric's invariants.

The contract for CI: if verify passes, the rubric is honoured. Violations name
the column, the check and how many rows broke it, and never print a raw value
(a CI log is not a place for an e-mail address).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tether.masking.evidence import read_manifest
from tether.masking.generalise import GENERALISED_ADDRESS, QUARTILES, on_grid
from tether.masking.plan import META_COLUMNS, RUBRIC_COL, RUN_COL
from tether.masking.rubric import Bucket, ColumnRule, Rubric
from tether.masking.sources import Source, open_source
from tether.masking.tokens import domain_tag, token_pattern

DIGEST = r"^[0-9a-f]{64}$"
ANY_TOKEN = r"^tok_([0-9a-f]{6})_[0-9a-f]{20}$"
EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
PHONE = (
    r"(?:\+?\b1[\s.-]?)?(?:\(\d{3}\)|\b\d{3})[\s.-]\d{3}[\s.-]\d{4}\b"
    r"|\+\d{1,3}[\s.-]?\d{2,4}[\s.-]\d{3,4}[\s.-]?\d{3,4}\b"
)


@dataclass(frozen=True)
class Violation:
    """One broken invariant."""

    check: str
    column: str
    rows: int
    detail: str

    def __str__(self) -> str:
        where = f"{self.column}: " if self.column else ""
        return f"[{self.check}] {where}{self.detail} ({self.rows} row(s))"


@dataclass
class VerifyOptions:
    """What to verify against."""

    rubric: Rubric
    domain: str | None = None
    raw_sample: Source | None = None
    against: tuple[Path, ...] = ()
    ner_sample: int = 200


def load_masked(path: Path) -> tuple[pl.DataFrame, dict[str, object] | None]:
    """A masked output directory (``data/`` plus manifest), a Parquet file or a CSV."""
    if (path / "data").is_dir():
        return pl.read_parquet(str(path / "data" / "*.parquet")), read_manifest(path)
    return open_source(str(path)).scan().collect(), None


def verify(path: Path, opts: VerifyOptions) -> list[Violation]:
    """Every violation of the rubric's invariants in the masked data at ``path``."""
    df, manifest = load_masked(path)
    domain = opts.domain or (str(manifest["domain"]) if manifest else None)
    out: list[Violation] = []
    if manifest and opts.domain and manifest.get("domain") != opts.domain:
        out.append(
            Violation(
                "domain",
                "",
                df.height,
                f"masked for domain {manifest.get('domain')!r}, verified as {opts.domain!r}",
            )
        )
    out += _check_columns(df, opts.rubric)
    raw = _raw_values(opts.raw_sample)
    for name in df.columns:
        rule = opts.rubric.columns.get(name)
        if rule is None:
            continue
        col = df[name]
        if rule.bucket is Bucket.DIRECT:
            out += _check_digests(col, raw)
        elif rule.bucket is Bucket.QUASI:
            out += _check_tokens(col, domain, raw)
        elif rule.bucket is Bucket.SENSITIVE:
            out += _check_generalised(col, rule)
        elif rule.bucket is Bucket.FREE_TEXT:
            out += _check_free_text(col, rule, opts.ner_sample)
    out += _scan_contacts(df, opts.rubric)
    for other in opts.against:
        out += _check_against(df, opts.rubric, domain, other)
    return out


def _check_columns(df: pl.DataFrame, rubric: Rubric) -> list[Violation]:
    out = [
        Violation("unclassified", c, df.height, f"column is not in rubric {rubric.label}")
        for c in df.columns
        if c not in rubric.columns and c not in META_COLUMNS
    ]
    for meta in (RUN_COL, RUBRIC_COL):
        if meta not in df.columns:
            out.append(Violation("stamp", meta, df.height, "per-row masking stamp is missing"))
    if RUBRIC_COL in df.columns:
        wrong = df.filter(pl.col(RUBRIC_COL) != rubric.label).height
        if wrong:
            out.append(
                Violation("stamp", RUBRIC_COL, wrong, f"rows not masked under {rubric.label}")
            )
    return out


def _raw_values(sample: Source | None) -> set[str]:
    if sample is None:
        return set()
    frame = sample.scan().collect()
    values: set[str] = set()
    for c in frame.columns:
        values.update(v for v in frame[c].cast(pl.String).drop_nulls().to_list() if v)
    return values


def _present(col: pl.Series) -> pl.Series:
    return col.drop_nulls()


def _check_digests(col: pl.Series, raw: set[str]) -> list[Violation]:
    out: list[Violation] = []
    vals = _present(col).cast(pl.String)
    bad = vals.filter(~vals.str.contains(DIGEST)).len()
    if bad:
        out.append(Violation("digest-form", col.name, bad, "not a 64-hex-digit HMAC-SHA256 digest"))
    if raw:
        seen = set(vals.to_list())
        equal = len(seen & raw)
        if equal:
            out.append(Violation("digest-raw", col.name, equal, "value equals a raw value"))
        plain = {hashlib.sha256(v.encode()).hexdigest() for v in raw}
        unsalted = len(seen & plain)
        if unsalted:
            out.append(
                Violation(
                    "digest-unsalted",
                    col.name,
                    unsalted,
                    "value is a plain SHA-256 of a raw value (no salt)",
                )
            )
    return out


def _check_tokens(col: pl.Series, domain: str | None, raw: set[str]) -> list[Violation]:
    out: list[Violation] = []
    vals = _present(col).cast(pl.String)
    tags = vals.str.extract(ANY_TOKEN, 1)
    not_tokens = int(tags.is_null().sum())
    if not_tokens:
        out.append(Violation("token-form", col.name, not_tokens, "not a tok_<tag>_<hex> token"))
    if domain is not None:
        mine = domain_tag(domain)
        foreign = Counter(t for t in tags.drop_nulls().to_list() if t != mine)
        if foreign:
            tags_seen = ", ".join(sorted(foreign))
            out.append(
                Violation(
                    "token-domain",
                    col.name,
                    sum(foreign.values()),
                    f"tokens from another domain's namespace (tag {tags_seen}, expected {mine} for "
                    f"{domain!r}); each domain must tokenise with its own --domain",
                )
            )
        elif not_tokens == 0 and vals.len() and not vals.str.contains(token_pattern(domain)).all():
            out.append(Violation("token-domain", col.name, 1, "token does not match its domain"))
    if raw:
        equal = len(set(vals.to_list()) & raw)
        if equal:
            out.append(Violation("token-raw", col.name, equal, "value equals a raw value"))
    return out


def _check_generalised(col: pl.Series, rule: ColumnRule) -> list[Violation]:
    vals = _present(col)
    detail = ""
    bad = 0
    if rule.method == "gps_grid":
        if vals.dtype.is_numeric():
            bad = sum(1 for v in vals.to_list() if not on_grid(float(v), rule.step))
        else:
            bad = vals.len()
        detail = f"coordinate not on the {rule.step} degree grid"
    elif rule.method == "hour":
        if isinstance(vals.dtype, pl.Datetime):
            frame = vals.to_frame()
            c = pl.col(col.name)
            bad = frame.filter(
                (c.dt.minute() != 0) | (c.dt.second() != 0) | (c.dt.microsecond() != 0)
            ).height
        else:
            bad = vals.len()
        detail = "timestamp not on the hour"
    elif rule.method in ("age_bin", "birth_date_bin"):
        bad = sum(1 for v in vals.cast(pl.String).to_list() if not _is_bin(v, rule.width))
        detail = f"not a {rule.width}-year bin like 1985-1989"
    elif rule.method == "address_city_region":
        bad = int(vals.cast(pl.String).str.contains(GENERALISED_ADDRESS).not_().sum())
        detail = "not 'City, Region' (a street or number survived)"
    elif rule.method == "quartile":
        bad = int((~vals.cast(pl.String).is_in(list(QUARTILES))).sum())
        detail = "not a quartile label Q1-Q4"
    return [Violation("generalised", col.name, int(bad), detail)] if bad else []


def _is_bin(value: str, width: int) -> bool:
    lo, sep, hi = value.partition("-")
    if not (sep and lo.isdigit() and hi.isdigit()):
        return False
    return int(lo) % width == 0 and int(hi) == int(lo) + width - 1


def _check_free_text(col: pl.Series, rule: ColumnRule, sample: int) -> list[Violation]:
    from tether.masking.freetext import get_redactor

    texts = _present(col).cast(pl.String).unique(maintain_order=True).head(sample).to_list()
    if not texts:
        return []
    found = get_redactor(rule.entities, rule.threshold).find(texts)
    kinds = Counter(k for f in found for k in f)
    rows = sum(1 for f in found if f)
    if not rows:
        return []
    summary = ", ".join(f"{k}={n}" for k, n in sorted(kinds.items()))
    return [Violation("free-text-entities", col.name, rows, f"NER still finds {summary}")]


def _scan_contacts(df: pl.DataFrame, rubric: Rubric) -> list[Violation]:
    """No e-mail address or phone number in any text column (hashes and tokens excepted)."""
    out: list[Violation] = []
    hashed = {Bucket.DIRECT, Bucket.QUASI}
    for name in df.columns:
        rule = rubric.columns.get(name)
        if df[name].dtype != pl.String or (rule is not None and rule.bucket in hashed):
            continue
        col = df[name].drop_nulls()
        for check, pattern, what in (
            ("email", EMAIL, "e-mail address"),
            ("phone", PHONE, "phone number"),
        ):
            hits = col.str.contains(pattern).sum()
            if hits:
                out.append(
                    Violation(
                        check,
                        name,
                        int(hits),
                        f"contains an {what}" if what[0] == "e" else f"contains a {what}",
                    )
                )
    return out


def _tokens(df: pl.DataFrame, rubric: Rubric) -> set[str]:
    cols: Iterable[str] = (
        c for c in df.columns if c in rubric.columns and rubric.columns[c].bucket is Bucket.QUASI
    )
    values: set[str] = set()
    for c in cols:
        values.update(df[c].drop_nulls().cast(pl.String).to_list())
    return values


def _check_against(
    df: pl.DataFrame, rubric: Rubric, domain: str | None, other: Path
) -> list[Violation]:
    theirs, manifest = load_masked(other)
    their_domain = manifest.get("domain") if manifest else None
    if domain is not None and their_domain == domain:
        return []
    token_cols = [c for c in theirs.columns if theirs[c].dtype == pl.String]
    their_tokens: set[str] = set()
    for c in token_cols:
        s = theirs[c].drop_nulls()
        their_tokens.update(s.filter(s.str.contains(ANY_TOKEN)).to_list())
    shared = _tokens(df, rubric) & their_tokens
    if not shared:
        return []
    return [
        Violation(
            "cross-domain",
            "",
            len(shared),
            f"tokens also appear in {other} (domain {their_domain!r}): the two datasets share a "
            "token namespace and can be joined on it; re-mask one with its own --domain",
        )
    ]
