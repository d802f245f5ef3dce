"""Re-masking history when a kept column turns out to be personal data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from tether.errors import MaskingError
from tether.masking.decisions import DecisionLog
from tether.masking.engines import make_engine
from tether.masking.job import LOG_NAME, MaskRequest
from tether.masking.plan import REDACTIONS_COL, RUBRIC_COL, RUN_COL
from tether.masking.remask import plan_remask, remask
from tether.masking.rubric import parse_rubric
from tether.masking.salts import KeyRing
from tether.masking.sources import open_source
from tether.masking.tokens import tokenise
from tether.masking.verify import VerifyOptions, verify

from .conftest import DAY, mask, rubric_text

MAC_KEPT = "tool_mac: {bucket: behavioural, reason: thought to be a part number}"
V1 = parse_rubric(rubric_text().replace("tool_mac: {bucket: quasi_identifier}", MAC_KEPT))
V2 = parse_rubric(rubric_text().replace("version: 1", "version: 2"))


def request(old: Path, out: Path, ring: KeyRing) -> MaskRequest:
    """What the CLI builds: the old output's data as the source, the new rubric."""
    return MaskRequest(
        source=open_source(str(old / "data")),
        rubric=V2,
        keys=ring,
        domain="tool-telemetry",
        out=out,
        engine=make_engine("polars"),
        at=DAY,
    )


def test_kept_column_found_personal_is_remasked_from_the_output(
    tmp_path: Path, raw_dir: Path, ring: KeyRing
) -> None:
    old = tmp_path / "v1"
    first = mask(raw_dir / "tools.parquet", old, V1, ring)
    assert verify(old, VerifyOptions(V2, ner_sample=0)) != []  # raw MACs fail the new rubric

    plan = plan_remask(old, V2)
    assert plan.changed == ("tool_mac",) and plan.need_raw == ()
    new = tmp_path / "v2"
    record = remask(old, request(old, new, ring), raw=None)
    assert record["event"] == "remask" and record["supersedes"] == first["run_id"]
    assert record["columns"]["tool_mac"]["treatment"] == "domain_token"
    assert record["columns"]["operator_email"] == {
        "treatment": "carried",
        "from_run": first["run_id"],
    }

    a = pl.read_parquet(old / "data" / "*.parquet")
    b = pl.read_parquet(new / "data" / "*.parquet")
    raw = pl.read_parquet(raw_dir / "tools.parquet")
    assert b["tool_mac"][0] == tokenise(ring.token_key, "tool-telemetry", raw["tool_mac"][0])
    same = [c for c in a.columns if c not in ("tool_mac", RUN_COL, RUBRIC_COL)]
    assert a.select(same).equals(b.select(same))
    assert b[RUBRIC_COL].unique().to_list() == ["tool-telemetry@v2"]
    assert (b[REDACTIONS_COL] == a[REDACTIONS_COL]).all()
    assert verify(new, VerifyOptions(V2)) == []
    events = [r["event"] for r in DecisionLog(tmp_path / LOG_NAME).records()]
    assert events == ["run", "remask"]


def test_changing_a_masked_column_needs_the_raw_source(
    tmp_path: Path, raw_dir: Path, ring: KeyRing
) -> None:
    v1 = parse_rubric(rubric_text())
    old = tmp_path / "v1"
    mask(raw_dir / "tools.parquet", old, v1, ring)
    v2 = parse_rubric(
        rubric_text()
        .replace("version: 1", "version: 2")
        .replace(
            "operator_name: {bucket: quasi_identifier}",
            "operator_name: {bucket: direct_identifier}",
        )
    )
    base = replace(request(old, tmp_path / "v2", ring), rubric=v2)
    with pytest.raises(MaskingError, match=r"operator_name .*Pass --source RAW"):
        remask(old, base, raw=None)
    record = remask(old, base, raw=open_source(str(raw_dir / "tools.parquet")))
    assert record["columns"]["operator_name"]["treatment"] == "hmac_sha256"
    assert verify(tmp_path / "v2", VerifyOptions(v2, ner_sample=0)) == []


def test_remask_needs_a_newer_rubric(tmp_path: Path, polars_out: Path) -> None:
    with pytest.raises(MaskingError, match="higher version"):
        plan_remask(polars_out, parse_rubric(rubric_text()))
