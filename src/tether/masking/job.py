"""One masking run, start to finish: plan, engine, evidence, decision log.

The engine writes into ``<out>.partial-<run>``; only a run that finished is moved
to ``<out>``, so a refused or failed run leaves no masked data behind, and the
decision log records the failure too.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tether.masking.decisions import DecisionLog
from tether.masking.engines.base import MaskEngine
from tether.masking.errors import OutputError
from tether.masking.evidence import KEPT, render_kept_columns, write_manifest
from tether.masking.freetext import parse_stamps
from tether.masking.plan import REDACTIONS_COL, MaskPlan, new_run_id
from tether.masking.progress import NullReporter, Reporter
from tether.masking.rubric import Rubric
from tether.masking.salts import KeyRing
from tether.masking.sources import Source
from tether.masking.tokens import check_domain, domain_tag

LOG_NAME = "mask-decisions.jsonl"


@dataclass
class MaskRequest:
    """What to mask, how, and where to put it."""

    source: Source
    rubric: Rubric
    keys: KeyRing
    domain: str
    out: Path
    engine: MaskEngine
    log_path: Path | None = None
    at: date | None = None
    salt_version: str | None = None
    reporter: Reporter = field(default_factory=NullReporter)
    carry: frozenset[str] = frozenset()
    supersedes: str | None = None

    @property
    def log(self) -> DecisionLog:
        """The decision log (default: next to the output directory)."""
        return DecisionLog(self.log_path or self.out.parent / LOG_NAME)


def run_mask(req: MaskRequest) -> dict[str, Any]:
    """Mask ``req.source`` into ``req.out``; returns the decision-log record."""
    check_domain(req.domain)
    if req.out.exists():
        raise OutputError(
            f"{req.out} exists; masked outputs are evidence and are never overwritten. "
            "Write to a new directory."
        )
    started = datetime.now(UTC)
    at = req.at or started.date()
    salt = req.keys.select(at, req.salt_version)
    run_id = new_run_id(f"{req.rubric.label}{req.domain}{started.isoformat()}")
    plan = MaskPlan(req.rubric, req.domain, salt, req.keys.token_key, run_id, req.carry)
    base: dict[str, Any] = {
        "event": "remask" if req.supersedes else "run",
        "run_id": run_id,
        "started_at": started.isoformat(),
        "engine": req.engine.name,
        "domain": req.domain,
        "domain_tag": domain_tag(req.domain),
        "rubric": {
            "name": req.rubric.name,
            "version": req.rubric.version,
            "sha256": req.rubric.sha256,
        },
        "salt_version": salt.version,
        "source": req.source.describe(),
        "output": str(req.out),
    }
    if req.supersedes:
        base["supersedes"] = req.supersedes
    tmp = req.out.with_name(f"{req.out.name}.partial-{run_id}")
    try:
        columns = req.source.columns()
        plan.check(columns)
        bounds = req.engine.run(req.source, plan, tmp / "data", req.reporter)
        rows, found = _summarise(tmp / "data")
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        req.log.append({**base, "event": "run_failed", "error": f"{type(exc).__name__}: {exc}"})
        raise
    steps = plan.steps(columns)
    record = {
        **base,
        "finished_at": datetime.now(UTC).isoformat(),
        "rows": rows,
        "columns": {
            c: (
                {"treatment": "carried", "from_run": req.supersedes}
                if r is None
                else {"bucket": r.bucket.value, "treatment": r.treatment, "params": r.params()}
            )
            for c, r in steps
        },
        "quartile_bounds": bounds,
        "free_text_entities": found,
    }
    write_manifest(tmp, record, req.rubric)
    kept = render_kept_columns(req.rubric, req.rubric.name, [c for c, _ in steps])
    (tmp / KEPT).write_text(kept)
    tmp.rename(req.out)
    return req.log.append(record)


def _summarise(data_dir: Path) -> tuple[int, dict[str, dict[str, int]]]:
    import polars as pl

    lf = pl.scan_parquet(str(data_dir / "*.parquet"))
    counts = lf.group_by(REDACTIONS_COL).len().collect()
    total: Counter[tuple[str, str]] = Counter()
    rows = 0
    for stamp, n in counts.iter_rows():
        rows += n
        for key, k in parse_stamps(stamp).items():
            total[key] += k * n
    found: dict[str, dict[str, int]] = {}
    for (column, kind), k in sorted(total.items()):
        found.setdefault(column, {})[kind] = k
    return rows, found
