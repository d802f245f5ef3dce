"""The ``tether mask`` commands, as an operator and a CI job would run them."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tether.errors import MaskingError
from tether.masking.cli import app
from tether.masking.errors import OutputError

runner = CliRunner()


def ok(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    ok("synth", "--rows", "80", "--seed", "3", "--out", str(tmp_path / "raw.csv"))
    (tmp_path / "rubric.yaml").write_text(ok("example-rubric"))
    ok(
        "keys",
        "init",
        str(tmp_path / "keys.yaml"),
        "--version",
        "2026q1",
        "--valid-from",
        "2026-01-01",
    )
    return tmp_path


def test_run_verify_explain_and_log_check(workspace: Path) -> None:
    w = workspace
    out = ok(
        "run",
        str(w / "raw.csv"),
        "-r",
        str(w / "rubric.yaml"),
        "-k",
        f"file:{w / 'keys.yaml'}",
        "-d",
        "tool-telemetry",
        "-o",
        str(w / "masked"),
        "--mapping-out",
        str(w / "officer" / "map.bin"),
    )
    assert "masked 80 rows" in out and "mapping table" in out
    assert "ok" in ok(
        "verify",
        str(w / "masked"),
        "-r",
        str(w / "rubric.yaml"),
        "--raw-sample",
        str(w / "raw.csv"),
    )
    doc = json.loads(ok("explain", str(w / "masked"), "5"))
    assert doc["row"] == 5 and doc["columns"]["notes"]["treatment"] == "ner_redact"
    assert "chain intact" in ok("log-check", str(w / "mask-decisions.jsonl"))
    assert "| `battery_pct` |" in ok("kept", "-r", str(w / "rubric.yaml"))

    token = pl.read_parquet(w / "masked" / "data" / "*.parquet")["operator_name"][0]
    name = pl.read_csv(w / "raw.csv")["operator_name"][0]
    shown = ok(
        "lookup",
        token,
        "--mapping",
        str(w / "officer" / "map.bin"),
        "-k",
        str(w / "keys.yaml"),
        "-d",
        "tool-telemetry",
    )
    assert f"operator_name: {name}" in shown
    with pytest.raises(MaskingError, match="wrong domain"):
        runner.invoke(
            app,
            [
                "lookup",
                token,
                "--mapping",
                str(w / "officer" / "map.bin"),
                "-k",
                str(w / "keys.yaml"),
                "-d",
                "billing",
            ],
            catch_exceptions=False,
        )


def test_verify_exits_non_zero_with_a_readable_list(workspace: Path) -> None:
    w = workspace
    ok(
        "run",
        str(w / "raw.csv"),
        "-r",
        str(w / "rubric.yaml"),
        "-k",
        str(w / "keys.yaml"),
        "-d",
        "tool-telemetry",
        "-o",
        str(w / "masked"),
    )
    part = w / "masked" / "data" / "part-00000.parquet"
    raw = pl.read_csv(w / "raw.csv")
    pl.read_parquet(part).with_columns(raw["operator_email"]).write_parquet(part)
    result = runner.invoke(
        app, ["verify", str(w / "masked"), "-r", str(w / "rubric.yaml"), "--ner-sample", "0"]
    )
    assert result.exit_code == 1
    assert "violation(s)" in result.output
    assert "[digest-form] operator_email: not a 64-hex-digit" in result.output


def test_mapping_table_refused_inside_the_output(workspace: Path) -> None:
    w = workspace
    with pytest.raises(OutputError, match="store the mapping table apart"):
        runner.invoke(
            app,
            [
                "run",
                str(w / "raw.csv"),
                "-r",
                str(w / "rubric.yaml"),
                "-k",
                str(w / "keys.yaml"),
                "-d",
                "tool-telemetry",
                "-o",
                str(w / "masked"),
                "--mapping-out",
                str(w / "masked" / "map.bin"),
            ],
            catch_exceptions=False,
        )


def test_keys_show_hides_secrets_and_rotate(workspace: Path) -> None:
    w = workspace
    ok("keys", "rotate", str(w / "keys.yaml"), "--version", "2026q2", "--valid-from", "2026-04-01")
    shown = ok("keys", "show", "-k", str(w / "keys.yaml"))
    salts = json.loads(shown)
    assert [s["version"] for s in salts] == ["2026q1", "2026q2"]
    assert salts[0]["usable_until"] == "2026-05-01"
    secret = (w / "keys.yaml").read_text().split("secret: ")[1].split()[0]
    assert secret not in shown


def test_tether_cli_mounts_mask() -> None:
    from tether.cli.main import _register
    from tether.cli.main import app as root

    _register()
    result = runner.invoke(root, ["mask", "--help"])
    assert result.exit_code == 0 and "verify" in result.output
