"""A compiled masking run: the rubric, the key material and the run's identity.

Engines read a :class:`MaskPlan` and nothing else. It is built per run and never
stored: it holds secrets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from tether.masking.rubric import Bucket, ColumnRule, Rubric
from tether.masking.salts import SaltVersion
from tether.masking.tokens import token_message_prefix, token_prefix

RUN_COL = "_mask_run_id"
RUBRIC_COL = "_mask_rubric"
REDACTIONS_COL = "_mask_redactions"
META_COLUMNS = (RUN_COL, RUBRIC_COL, REDACTIONS_COL)


@dataclass(frozen=True)
class MaskPlan:
    """Everything an engine needs to mask one dataset."""

    rubric: Rubric
    domain: str
    salt: SaltVersion = field(repr=False)
    token_key: bytes = field(repr=False)
    run_id: str
    carry: frozenset[str] = frozenset()

    def steps(self, columns: Iterable[str]) -> list[tuple[str, ColumnRule | None]]:
        """Each data column with its rule; None means carried unchanged (re-masking)."""
        out: list[tuple[str, ColumnRule | None]] = []
        for c in columns:
            if c in META_COLUMNS:
                continue
            out.append((c, None if c in self.carry else self.rubric.columns[c]))
        return out

    def check(self, columns: Iterable[str]) -> None:
        """Fail closed on columns the rubric does not name."""
        self.rubric.require_classified(c for c in columns if c not in META_COLUMNS)

    @property
    def token_prefix(self) -> str:
        """The start of every token this run writes."""
        return token_prefix(self.domain)

    @property
    def token_message_prefix(self) -> bytes:
        """Bytes mixed into the token HMAC before each value."""
        return token_message_prefix(self.domain)

    def free_text_rules(self, columns: Iterable[str]) -> list[ColumnRule]:
        """The free-text rules applying to ``columns`` (excluding carried ones)."""
        return [r for c, r in self.steps(columns) if r is not None and r.bucket is Bucket.FREE_TEXT]


def new_run_id(seed: str) -> str:
    """A short, unique run id."""
    import secrets

    return hashlib.sha256((seed + secrets.token_hex(8)).encode()).hexdigest()[:16]
