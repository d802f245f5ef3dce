"""The masking decision log: append-only JSON lines, chained by SHA-256.

One record per run (or failed run, or re-mask). Each record carries the digest
of the record before it, so deleting or editing a line breaks the chain and
``tether mask log check`` says where. Together with the per-row stamps
(``_mask_run_id``, ``_mask_rubric``, ``_mask_redactions``) it answers the
auditor's question: for this exact row, what was done to it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tether.masking.errors import OutputError

GENESIS = "0" * 64


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


class DecisionLog:
    """An append-only, hash-chained JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append ``record`` (with ``prev`` set to the last line's digest); returns it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError as exc:
            raise OutputError(f"cannot open decision log {self.path}: {exc.strerror}") from exc
        with os.fdopen(fd, "r+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            last = GENESIS
            for line in fh:
                if line.strip():
                    last = _digest(line.rstrip("\n"))
            entry = {**record, "prev": last}
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return entry

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def find_run(self, run_id: str) -> dict[str, Any] | None:
        """The record of run ``run_id``, if logged."""
        for r in self.records():
            if r.get("run_id") == run_id and r.get("event") in ("run", "remask"):
                return r
        return None

    def check(self) -> list[str]:
        """Problems with the chain (empty when intact)."""
        problems: list[str] = []
        if not self.path.exists():
            return [f"{self.path} does not exist"]
        last = GENESIS
        with self.path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                text = line.rstrip("\n")
                if not text.strip():
                    continue
                try:
                    rec = json.loads(text)
                except json.JSONDecodeError:
                    problems.append(f"line {n}: not JSON")
                    last = _digest(text)
                    continue
                if rec.get("prev") != last:
                    problems.append(
                        f"line {n}: chain broken (a line before it was changed or removed)"
                    )
                last = _digest(text)
        return problems
