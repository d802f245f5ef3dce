"""``tether demo``: run headless as a user would, read what it reports; Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tether.sim.demo import demo_scenario
from tether.sim.errors import ScenarioError

TETHER = [sys.executable, "-m", "tether.cli.main"]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that name ``text`` (the demo's work directory)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        if text in cmdline and state != "Z":
            found.append(cmdline)
    return found


def test_demo_headless_reports_the_fleet_and_the_attacks(tmp_path: Path) -> None:
    report = tmp_path / "demo.json"
    workdir = tmp_path / "work"
    done = subprocess.run(
        [
            *TETHER,
            "demo",
            "--for",
            "15s",
            "--headless",
            "--every",
            "2",
            "--workdir",
            str(workdir),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    lines = [line for line in done.stdout.splitlines() if "| online " in line]
    assert len(lines) >= 3, done.stdout
    assert all("accepted" in line and "forgeries refused" in line for line in lines)
    assert "match: the platform holds exactly what the devices delivered" in done.stdout
    doc = json.loads(report.read_text())
    run, fleet = doc["run"], doc["fleet"]
    assert run["ok"] and run["scenario"] == "demo"
    # Every class is present, carts and tools by their sites; brushes name none.
    sites = {(p["device_class"], p["site"]) for p in fleet["presence"]}
    assert ("oral-care-brush", "-") in sites
    assert {("retail-cart", "store-north"), ("retail-cart", "store-south")} <= sites
    assert {("power-tool", "north-yard"), ("power-tool", "dock-7")} <= sites
    # The view's totals are what landed and what the attacks were answered.
    landed = sum(c["landed"] for c in run["expected"].values())
    assert fleet["accepted"] >= landed > 0
    attacks = run["attacks"]
    assert attacks and all(a["answer"] == a["expected"] for a in attacks)
    forged = sum(1 for a in attacks if a["answer"] == "bad_signature")
    assert fleet["forgeries_refused"] == forged > 0
    assert fleet["rejects_by_code"]["bad_signature"] == forged
    assert fleet["rejected"] == sum(1 for a in attacks if a["answer"] not in ("duplicate",))
    assert fleet["duplicates"] >= sum(1 for a in attacks if a["answer"] == "duplicate")
    # The security events went to the demo's log, not over the view.
    assert "security event" not in done.stdout + done.stderr
    assert "security event" in (workdir / "demo.log").read_text()
    assert not processes_mentioning(str(workdir))


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_demo_stops_every_process_it_started(tmp_path: Path, how: signal.Signals) -> None:
    workdir = tmp_path / "work"
    demo = subprocess.Popen(
        [*TETHER, "demo", "--headless", "--every", "1", "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 180
        for line in demo.stdout:
            if "| online " in line:
                break
            assert time.monotonic() < deadline, "the demo never showed its fleet"
        mosquitto = [c for c in processes_mentioning(str(workdir)) if "mosquitto" in c]
        assert mosquitto, "the demo runs Mosquitto from its work directory"
        demo.send_signal(how)
        rest = demo.communicate(timeout=120)[0]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130, rest
    assert "stopped after" in rest
    assert not processes_mentioning(str(workdir))


def test_a_short_demo_keeps_its_attacks_and_refuses_no_speed() -> None:
    short = demo_scenario(run_for=20)
    assert short.duration == 20 * 720  # a day every two minutes
    assert short.attacks_at == short.duration / 2
    assert all(o.at < short.duration for o in short.networks.stores.outages)
    assert demo_scenario(run_for=10_000).duration == 2 * 86400  # never past its own span
    with pytest.raises(ScenarioError, match="--for needs a speed"):
        demo_scenario(run_for=20, speed="max")
