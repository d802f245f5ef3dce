"""``tether sim``: run, validate and list scenarios from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether.cli.main import app
from tether.sim import cli as sim_cli
from tether.sim.check import Comparison, Mismatch

runner = CliRunner()
SMALL = """\
name: small
start: now
duration: 2d
speed: max
fleet:
  brushes: {count: 12, ring_slots: 8, new: 0.5}
networks:
  phones: {app_open: 0.5}
"""


def test_run_prints_what_it_did_and_what_landed(tmp_path: Path) -> None:
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL)
    report = tmp_path / "report.json"
    workdir = tmp_path / "work"
    result = runner.invoke(
        app,
        ["sim", "run", str(scenario), "--workdir", str(workdir), "--report", str(report)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "small: 12 devices" in out and "What the world did" in out
    assert "match: the platform holds exactly what the devices delivered" in out
    doc = json.loads(report.read_text())
    assert doc["ok"] is True and doc["devices"] == {"oral-care-brush": 12}
    assert (
        sum(d["expected"] for d in doc["per_device"])
        == doc["expected"]["oral-care-brush"]["landed"]
    )
    assert (workdir / "platform" / "telemetry.sqlite").exists()  # kept when named
    again = runner.invoke(app, ["sim", "run", str(scenario), "--workdir", str(workdir)])
    assert again.exit_code != 0 and "is not empty" in str(again.exception)


def test_a_mismatch_exits_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = sim_cli.run_scenario

    def broken(*args: object, **kwargs: object) -> object:
        report = real(*args, **kwargs)  # type: ignore[arg-type]
        report.comparison = Comparison(
            report.comparison.devices,
            [Mismatch("OCB-X", "oral-care-brush", "missing", "1 reached a door: 7")],
        )
        return report

    monkeypatch.setattr(sim_cli, "run_scenario", broken)
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL.replace("count: 12", "count: 2"))
    result = runner.invoke(app, ["sim", "run", str(scenario)])
    assert result.exit_code == 1
    assert "1 mismatches" in result.output and "OCB-X (oral-care-brush) missing" in result.output


def test_validate_and_list(tmp_path: Path) -> None:
    listed = runner.invoke(app, ["sim", "list"])
    assert listed.exit_code == 0 and "brush-week" in listed.output
    ok = runner.invoke(app, ["sim", "validate", "store-outage"])
    assert ok.exit_code == 0 and "36 devices" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nduration: soon\n")
    done = subprocess.run(
        [sys.executable, "-m", "tether.cli.main", "sim", "validate", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "duration: 'soon' is not a duration" in " ".join(done.stderr.split())
