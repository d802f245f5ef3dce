"""Audit artefacts written next to each masked dataset: the manifest and kept_columns.md."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tether.masking.rubric import Bucket, Rubric

MANIFEST = "manifest.json"
KEPT = "kept_columns.md"


def render_kept_columns(rubric: Rubric, dataset: str, columns: Iterable[str]) -> str:
    """Markdown: which columns were kept untouched and why, and what befell the rest."""
    present = list(columns)
    lines = [
        f"# Kept columns: {dataset}",
        "",
        f"Rubric `{rubric.label}` (sha256 `{rubric.sha256[:16]}…`). Review this file in the pull "
        "request that changes the rubric: every kept column reaches analysts as it is.",
        "",
        "## Kept (behavioural)",
        "",
        "| column | why it is kept |",
        "| --- | --- |",
    ]
    kept = [
        c for c in present if c in rubric.columns and rubric.columns[c].bucket is Bucket.BEHAVIOURAL
    ]
    lines += [f"| `{c}` | {rubric.columns[c].reason} |" for c in kept] or ["| (none) | |"]
    lines += ["", "## Transformed", "", "| column | bucket | treatment |", "| --- | --- | --- |"]
    for c in present:
        rule = rubric.columns.get(c)
        if rule is not None and rule.bucket is not Bucket.BEHAVIOURAL:
            lines.append(f"| `{c}` | {rule.bucket.value} | {rule.treatment} |")
    return "\n".join(lines) + "\n"


def write_manifest(out_dir: Path, record: dict[str, Any], rubric: Rubric) -> None:
    """The run's record and the rubric text as used, for verify, explain and remask."""
    doc = {**record, "rubric_text": rubric.text}
    (out_dir / MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The manifest of a masked dataset directory, if it has one."""
    p = out_dir / MANIFEST
    if not p.is_file():
        return None
    data: dict[str, Any] = json.loads(p.read_text())
    return data
