"""``tether rollout`` through typer's CliRunner, on an SQLite data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.rollouts.conftest import (
    NEW_ANCHOR,
    Clock,
    add_fleet,
    add_image,
    event,
    fleet,
    open_platform,
)
from tether.cli.main import app
from tether.platform import Platform

runner = CliRunner()


def run(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), *args], catch_exceptions=True)
    text = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text += f"\n{type(result.exception).__name__}: {result.exception}"
    return result.exit_code, " ".join(text.split())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "tether"
    p = open_platform(data, Clock())
    try:
        add_fleet(p, fleet(30))
        add_image(p, tmp_path)
        add_image(p, tmp_path, "3.0.0", requires_trust=[NEW_ANCHOR])
    finally:
        p.close()
    return data


def with_platform(data_dir: Path) -> Platform:
    return open_platform(data_dir, Clock())


def test_create_status_release_abort_list(data_dir: Path) -> None:
    code, out = run(
        data_dir,
        "rollout", "create", "--class", "retail-cart", "--version", "2.0.0",
        "--plan", "canary:3:24h,50%:24h,100%:0h", "--window", "store-1=22:00-06:00",
        "--hw", "A", "--hw", "B",
    )  # fmt: skip
    assert code == 0, out
    assert "rollout 1" in out and "to 20 devices in 3 stages" in out and "store-1" in out
    code, out = run(data_dir, "rollout", "list")
    assert code == 0 and "running" in out and "2.0.0" in out
    p = with_platform(data_dir)
    try:
        p.rollout_monitor.check()
        canary = p.rollout_store.devices(1, [0])
        p.rollout_tracker.apply(
            [
                event(
                    d.serial,
                    9,
                    "boot",
                    1_800_000_100,
                    fw="2.0.0",
                    slot="b",
                    previous_fw="1.0.0",
                    rolled_back=False,
                )
                for d in canary
            ]
            + [
                event(
                    canary[0].serial,
                    10,
                    "boot",
                    1_800_000_200,
                    fw="1.0.0",
                    slot="a",
                    previous_fw="2.0.0",
                    rolled_back=True,
                )
            ]
        )
        p.rollout_monitor.check()
    finally:
        p.close()
    code, out = run(data_dir, "rollout", "status")
    assert code == 0, out
    for text in (
        "stages",
        "canary",
        "booted_clean",
        "rolled back",
        "after booting it clean",
        "halted",
        "rollback",
        "health",
    ):
        assert text in out, text
    code, out = run(data_dir, "rollout", "release", "1")
    assert code == 0 and "released the halt" in out
    code, out = run(data_dir, "rollout", "release", "1")
    assert code == 0 and "started stage 2 of 3" in out
    code, out = run(data_dir, "rollout", "abort", "1", "--return-to-previous")
    assert code == 0 and "aborted" in out and "returned to the previous version" in out
    code, out = run(data_dir, "rollout", "status", "1")
    assert "aborted" in out and "to return" in out
    code, out = run(data_dir, "rollout", "release", "1")
    assert code != 0 and "aborted" in out


def test_refusals_name_what_is_wrong(data_dir: Path) -> None:
    code, out = run(data_dir, "rollout", "create", "--class", "retail-cart", "--version", "3.0.0")
    assert code != 0 and "have not acknowledged" in out and "CART00000" in out
    code, out = run(
        data_dir,
        "rollout",
        "create",
        "--class",
        "retail-cart",
        "--version",
        "2.0.0",
        "--plan",
        "soon",
    )
    assert code != 0 and "NAME:COUNT:SOAK" in out
    code, out = run(data_dir, "rollout", "status")
    assert code != 0 and "no rollouts yet" in out


def test_opt_out_and_opt_in(data_dir: Path) -> None:
    code, out = run(data_dir, "rollout", "opt-out", "--site", "store-0", "--device", "CART00001")
    assert code == 0 and "store-0: opted out" in out
    code, out = run(data_dir, "rollout", "create", "--class", "retail-cart", "--version", "2.0.0")
    assert code == 0 and "to 21 devices" in out  # 30, less 8 at store-0, less CART00001
    code, out = run(data_dir, "rollout", "opt-in", "--site", "store-0")
    assert code == 0 and "opted in" in out
    code, out = run(data_dir, "rollout", "opt-in", "--site", "store-0")
    assert "was not opted out" in out
    code, out = run(data_dir, "rollout", "opt-out")
    assert code != 0 and "--tenant, --site or --device" in out
