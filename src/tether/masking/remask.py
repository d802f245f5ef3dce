"""Re-masking history when the rubric changes (see docs/runbooks/remask.md).

Compares the rubric an output was masked under (kept in its manifest) with the
new one. Columns whose rule is unchanged are carried over as they are. A column
that was *kept* and is now masked is re-treated from the masked output itself
(its values are still the raw ones). Any other change needs the raw source,
since a digest or token cannot be turned into something else: pass ``--source``,
or the re-mask stops and names the columns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tether.masking.errors import MaskingError
from tether.masking.evidence import read_manifest
from tether.masking.job import MaskRequest, run_mask
from tether.masking.rubric import Bucket, Rubric, parse_rubric
from tether.masking.sources import ParquetSource, Source


@dataclass(frozen=True)
class RemaskPlan:
    """Which columns change treatment, and whether the raw source is needed."""

    old_run: str
    old_rubric: Rubric
    changed: tuple[str, ...]
    from_masked: tuple[str, ...]
    need_raw: tuple[str, ...]


def plan_remask(old_out: Path, new: Rubric) -> RemaskPlan:
    """Diff the old output's rubric against ``new``."""
    manifest = read_manifest(old_out)
    if manifest is None:
        raise MaskingError(f"{old_out} has no manifest.json; is it a tether masked output?")
    old = parse_rubric(str(manifest["rubric_text"]), origin=f"{old_out}/manifest.json")
    if new.name == old.name and new.version <= old.version:
        raise MaskingError(
            f"the new rubric must have a higher version than {old.label}; bump 'version'"
        )
    columns: dict[str, Any] = manifest["columns"]
    changed: list[str] = []
    from_masked: list[str] = []
    need_raw: list[str] = []
    for c in columns:
        before, after = old.columns.get(c), new.columns.get(c)
        if after is None:
            raise MaskingError(f"column {c!r} is not in the new rubric {new.label}")
        if (
            before is not None
            and before.treatment == after.treatment
            and (before.params() == after.params() or after.bucket is Bucket.BEHAVIOURAL)
        ):
            continue
        changed.append(c)
        (from_masked if before is None or before.bucket is Bucket.BEHAVIOURAL else need_raw).append(
            c
        )
    return RemaskPlan(
        str(manifest["run_id"]), old, tuple(changed), tuple(from_masked), tuple(need_raw)
    )


def remask(old_out: Path, base: MaskRequest, raw: Source | None) -> dict[str, Any]:
    """Re-mask ``old_out`` under ``base.rubric`` into ``base.out``; returns the log record."""
    plan = plan_remask(old_out, base.rubric)
    if not plan.changed:
        raise MaskingError(
            f"nothing to re-mask: no column's treatment differs from {plan.old_rubric.label}"
        )
    if plan.need_raw and raw is None:
        cols = ", ".join(plan.need_raw)
        raise MaskingError(
            f"column(s) {cols} were hashed, tokenised, generalised or redacted before and now "
            "need a different treatment; that needs the raw data. Pass --source RAW."
        )
    if raw is not None:
        return run_mask(replace(base, source=raw, supersedes=plan.old_run))
    manifest = read_manifest(old_out) or {}
    carry = frozenset(c for c in manifest.get("columns", {}) if c not in plan.changed)
    masked = ParquetSource(str(old_out / "data"))
    return run_mask(replace(base, source=masked, carry=carry, supersedes=plan.old_run))
