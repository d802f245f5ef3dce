"""PII masking for analytics exports.

A rubric puts every column in one of five buckets (direct identifier, quasi-
identifier, sensitive attribute, behavioural, free text); an engine (Polars or
PySpark) applies it; the run leaves audit evidence (a hash-chained decision log,
per-row stamps, ``kept_columns.md``); ``verify`` checks the output's invariants.

Heavy modules (engines, Presidio) are imported on first use, so importing this
package needs only the ``mask`` extra's YAML parser.
"""

from __future__ import annotations

from tether.masking.errors import (
    FreeTextError,
    KeyMaterialError,
    OutputError,
    RubricError,
    SaltRetiredError,
    SourceError,
    UnclassifiedColumnError,
)
from tether.masking.job import MaskRequest, run_mask
from tether.masking.keystore import open_keyring
from tether.masking.rubric import Bucket, ColumnRule, Rubric, load_rubric, parse_rubric
from tether.masking.salts import KeyRing, SaltVersion
from tether.masking.sources import Source, open_source, register_source_kind
from tether.masking.telemetry_source import TelemetrySource  # registers telemetry:

__all__ = [
    "Bucket",
    "ColumnRule",
    "FreeTextError",
    "KeyMaterialError",
    "KeyRing",
    "MaskRequest",
    "OutputError",
    "Rubric",
    "RubricError",
    "SaltRetiredError",
    "SaltVersion",
    "Source",
    "SourceError",
    "TelemetrySource",
    "UnclassifiedColumnError",
    "load_rubric",
    "open_keyring",
    "open_source",
    "parse_rubric",
    "register_source_kind",
    "run_mask",
]
