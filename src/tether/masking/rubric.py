"""The rubric: a versioned YAML file that puts every column in exactly one bucket.

A rubric looks like this::

    rubric: tool-telemetry        # the dataset family it covers
    version: 3                    # bump on every change; stamped on every masked row
    columns:
      operator_email: {bucket: direct_identifier}
      operator_name:  {bucket: quasi_identifier}
      gps_lat:        {bucket: sensitive, generalise: gps_grid}
      battery_pct:    {bucket: behavioural, reason: "drives battery-life analytics"}
      notes:          {bucket: free_text}

Unknown keys are errors, not warnings: a typo in a privacy file must not pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from tether.masking.errors import RubricError, UnclassifiedColumnError


class Bucket(StrEnum):
    """The five buckets of the rubric."""

    DIRECT = "direct_identifier"
    QUASI = "quasi_identifier"
    SENSITIVE = "sensitive"
    BEHAVIOURAL = "behavioural"
    FREE_TEXT = "free_text"


TREATMENTS: dict[Bucket, str] = {
    Bucket.DIRECT: "hmac_sha256",
    Bucket.QUASI: "domain_token",
    Bucket.SENSITIVE: "generalise",
    Bucket.BEHAVIOURAL: "keep",
    Bucket.FREE_TEXT: "ner_redact",
}

GENERALISERS = ("gps_grid", "age_bin", "birth_date_bin", "hour", "address_city_region", "quartile")
GPS_STEPS = (0.01, 0.1)

DEFAULT_ENTITIES = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "LOCATION",
    "STREET_ADDRESS",
    "URL",
    "IP_ADDRESS",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
)
KNOWN_ENTITIES = (*DEFAULT_ENTITIES, "NRP", "DATE_TIME", "MAC_ADDRESS", "ORGANIZATION")
DEFAULT_THRESHOLD = 0.35

_ALLOWED_KEYS: dict[Bucket, frozenset[str]] = {
    Bucket.DIRECT: frozenset({"bucket", "note"}),
    Bucket.QUASI: frozenset({"bucket", "note"}),
    Bucket.SENSITIVE: frozenset({"bucket", "note", "generalise", "step", "width"}),
    Bucket.BEHAVIOURAL: frozenset({"bucket", "note", "reason"}),
    Bucket.FREE_TEXT: frozenset({"bucket", "note", "entities", "threshold"}),
}


@dataclass(frozen=True)
class ColumnRule:
    """One column's bucket and the parameters of its treatment."""

    name: str
    bucket: Bucket
    method: str | None = None
    step: float = 0.01
    width: int = 5
    entities: tuple[str, ...] = DEFAULT_ENTITIES
    threshold: float = DEFAULT_THRESHOLD
    reason: str | None = None
    note: str | None = None

    @property
    def treatment(self) -> str:
        """What is done to the column, as written in the decision log."""
        base = TREATMENTS[self.bucket]
        return f"{base}:{self.method}" if self.method else base

    def params(self) -> dict[str, Any]:
        """The parameters that matter for this column's treatment."""
        if self.method == "gps_grid":
            return {"step": self.step}
        if self.method in ("age_bin", "birth_date_bin"):
            return {"width": self.width}
        if self.bucket is Bucket.FREE_TEXT:
            return {"entities": list(self.entities), "threshold": self.threshold}
        if self.bucket is Bucket.BEHAVIOURAL:
            return {"reason": self.reason}
        return {}


@dataclass(frozen=True)
class Rubric:
    """A parsed, validated rubric."""

    name: str
    version: int
    columns: Mapping[str, ColumnRule]
    text: str = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        """``name@vN``: the stamp written on every masked row."""
        return f"{self.name}@v{self.version}"

    @property
    def sha256(self) -> str:
        """Digest of the rubric's source text, for the decision log."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    def by_bucket(self, bucket: Bucket) -> list[ColumnRule]:
        """The rules of one bucket, in rubric order."""
        return [r for r in self.columns.values() if r.bucket is bucket]

    def require_classified(self, columns: Iterable[str]) -> None:
        """Fail closed: raise if any of ``columns`` is not named by the rubric."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise UnclassifiedColumnError(missing, self.label)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description: what is done to each column."""
        return {
            name: {"bucket": r.bucket.value, "treatment": r.treatment, "params": r.params()}
            for name, r in self.columns.items()
        }


def load_rubric(path: str | Path) -> Rubric:
    """Read and validate a rubric file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RubricError(f"cannot read rubric {p}: {exc.strerror}") from exc
    return parse_rubric(text, origin=str(p))


def parse_rubric(text: str, origin: str = "<rubric>") -> Rubric:
    """Parse and validate rubric text; every error names the offending key."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RubricError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise RubricError(f"{origin}: expected a mapping with keys rubric, version, columns")
    extra = set(doc) - {"rubric", "version", "columns", "description"}
    if extra:
        raise RubricError(f"{origin}: unknown top-level key(s) {sorted(extra)}")
    name = doc.get("rubric")
    if not isinstance(name, str) or not name.strip():
        raise RubricError(f"{origin}: 'rubric' must be the dataset family's name, e.g. tools")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RubricError(f"{origin}: 'version' must be a positive integer, got {version!r}")
    cols = doc.get("columns")
    if not isinstance(cols, dict) or not cols:
        raise RubricError(f"{origin}: 'columns' must map each column name to its bucket")
    rules = {str(k): _parse_rule(str(k), v, origin) for k, v in cols.items()}
    return Rubric(name=name, version=version, columns=rules, text=text)


def _parse_rule(name: str, raw: object, origin: str) -> ColumnRule:
    where = f"{origin}: columns.{name}"
    if not isinstance(raw, dict):
        raise RubricError(f"{where}: expected a mapping with at least 'bucket'")
    try:
        bucket = Bucket(str(raw.get("bucket")))
    except ValueError:
        choices = ", ".join(b.value for b in Bucket)
        raise RubricError(f"{where}.bucket: expected one of {choices}") from None
    unknown = set(raw) - _ALLOWED_KEYS[bucket]
    if unknown:
        raise RubricError(f"{where}: key(s) {sorted(unknown)} do not apply to bucket {bucket}")
    note = raw.get("note")
    if bucket is Bucket.BEHAVIOURAL:
        reason = raw.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise RubricError(
                f"{where}.reason: a kept column needs a written reason (it goes into "
                "kept_columns.md for review)"
            )
        return ColumnRule(name, bucket, reason=reason.strip(), note=note)
    if bucket is Bucket.SENSITIVE:
        return _parse_sensitive(name, raw, where, note)
    if bucket is Bucket.FREE_TEXT:
        return _parse_free_text(name, raw, where, note)
    return ColumnRule(name, bucket, note=note)


def _parse_sensitive(name: str, raw: dict[str, Any], where: str, note: str | None) -> ColumnRule:
    method = raw.get("generalise")
    if method not in GENERALISERS:
        raise RubricError(f"{where}.generalise: expected one of {', '.join(GENERALISERS)}")
    step = raw.get("step", 0.01)
    if "step" in raw and method != "gps_grid":
        raise RubricError(f"{where}.step: only gps_grid takes a step")
    if step not in GPS_STEPS:
        raise RubricError(
            f"{where}.step: expected 0.01 (the agreed grid, ~1.1 km) or 0.1; finer grids "
            "were judged too identifying"
        )
    width = raw.get("width", 5)
    if "width" in raw and method not in ("age_bin", "birth_date_bin"):
        raise RubricError(f"{where}.width: only age_bin and birth_date_bin take a width")
    if not isinstance(width, int) or isinstance(width, bool) or width < 5:
        raise RubricError(f"{where}.width: expected an integer of at least 5 (years)")
    return ColumnRule(name, Bucket.SENSITIVE, method=method, step=step, width=width, note=note)


def _parse_free_text(name: str, raw: dict[str, Any], where: str, note: str | None) -> ColumnRule:
    entities = raw.get("entities", list(DEFAULT_ENTITIES))
    if not isinstance(entities, list) or not entities:
        raise RubricError(f"{where}.entities: expected a non-empty list of entity types")
    bad = [e for e in entities if e not in KNOWN_ENTITIES]
    if bad:
        raise RubricError(f"{where}.entities: unknown {bad}; known: {', '.join(KNOWN_ENTITIES)}")
    threshold = raw.get("threshold", DEFAULT_THRESHOLD)
    if not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise RubricError(f"{where}.threshold: expected a score in (0, 1]")
    return ColumnRule(
        name,
        Bucket.FREE_TEXT,
        entities=tuple(sorted(set(entities))),
        threshold=float(threshold),
        note=note,
    )


def rubric_to_json(rubric: Rubric) -> str:
    """Canonical JSON of what the rubric does, for comparing two versions."""
    return json.dumps(rubric.describe(), sort_keys=True)
