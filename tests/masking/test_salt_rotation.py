"""Outputs under two salt versions join only inside the 30-day overlap window."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from tether.masking.errors import SaltRetiredError
from tether.masking.rubric import Rubric
from tether.masking.salts import KeyRing

from .conftest import mask


def joined(a: Path, b: Path) -> int:
    query = (
        "SELECT count(DISTINCT a.operator_email) FROM read_parquet(?) a "
        "JOIN read_parquet(?) b USING (operator_email)"
    )
    row = duckdb.execute(query, [str(a / "data" / "*.parquet"), str(b / "data" / "*.parquet")])
    result = row.fetchone()
    assert result is not None
    return int(result[0])


def test_join_only_inside_the_overlap(
    tmp_path: Path, raw_dir: Path, rubric: Rubric, ring: KeyRing
) -> None:
    src = raw_dir / "tools.parquet"
    march = tmp_path / "march"
    mask(src, march, rubric, ring, at=date(2026, 3, 15))
    assert joined(march, march) > 0

    # After rotation: the current salt (2026q2) never joins last quarter's output...
    april = tmp_path / "april"
    rec = mask(src, april, rubric, ring, at=date(2026, 4, 10))
    assert rec["salt_version"] == "2026q2"
    assert joined(march, april) == 0
    # ...but inside the overlap the previous salt may still be used, and joins.
    bridge = tmp_path / "april-bridge"
    rec = mask(src, bridge, rubric, ring, at=date(2026, 4, 30), salt_version="2026q1")
    assert rec["salt_version"] == "2026q1"
    assert joined(march, bridge) == joined(march, march)

    # Thirty days after the window closed, the old salt is gone for good.
    with pytest.raises(SaltRetiredError, match="30-day overlap is over"):
        mask(src, tmp_path / "may", rubric, ring, at=date(2026, 5, 1), salt_version="2026q1")
    may = tmp_path / "may-current"
    mask(src, may, rubric, ring, at=date(2026, 5, 1))
    assert joined(march, may) == 0
    assert joined(april, may) > 0
