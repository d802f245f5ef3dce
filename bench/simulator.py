"""How many simulated devices, and records a second, one process sustains against tether.

    .venv/bin/python bench/simulator.py [--devices 20000] [--duration 2h] [--seed N]
        [--workdir DIR]

Runs the simulator's load mode (the shipped ``load`` scenario, scaled to
``--devices`` in the same mix: nine in ten toothbrushes relayed by their
households' phones over HTTPS, the rest carts and tools each on its own MQTT
connection with mutual TLS) at ``--speed max`` against a fresh embedded
platform in the same process: Mosquitto, the HTTPS door, the gate, the
projector. Building the fleet (keys, certificates, accounts, the brushes'
past) is timed apart from the lived run.

It prints the devices simulated, how many were connected over MQTT at once,
the simulated time covered, the real seconds, records made per second and
records landed per second (of the lived run: from the world's start until the
platform held everything that reached its doors), and, measured in the same
run, where the CPU went: the simulator's own threads (the event loop and the
MQTT hub), the rest of the process (the platform: door, gate, bridge,
projector) and Mosquitto. The run's own check must match, or the bench exits
1. Timings on a shared machine are noisy; the CPU shares are less so.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tether.sim.errors import ScenarioError
from tether.sim.load import figures, scaled
from tether.sim.run import run_scenario
from tether.sim.scenario import _seconds

console = Console(width=None if sys.stdout.isatty() else 150)
SIM_THREADS = ("MainThread", "sim-mqtt-hub")  # the engine runs on the calling thread
TICKS = os.sysconf("SC_CLK_TCK")


def note(text: str) -> None:
    """A line for the record when the output is not a terminal (progress bars do not show)."""
    if not console.is_terminal:
        console.print(f"{time.strftime('%H:%M:%S')} {text}", highlight=False)


def thread_cpu(native_id: int) -> float:
    """CPU seconds of one of this process's threads (Linux)."""
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


class CpuWatch:
    """The simulator's threads' CPU time, read on each tick (a thread's is gone once it ends)."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}

    def look(self) -> None:
        for thread in threading.enumerate():
            if thread.name in SIM_THREADS and thread.native_id is not None:
                self.seen[thread.native_id] = thread_cpu(thread.native_id)

    @property
    def seconds(self) -> float:
        return sum(self.seen.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Load mode: simulated devices and records a second one process sustains.",
    )
    parser.add_argument("--devices", type=int, default=20_000, help="fleet size (20000)")
    parser.add_argument(
        "--duration", default=None, help="simulated time to live, e.g. 30m or 2h (the scenario's)"
    )
    parser.add_argument("--seed", type=int, default=None, help="another seed than the scenario's")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the platform here")
    args = parser.parse_args(argv)
    try:
        duration = _seconds(args.duration) if args.duration else None
        scenario = scaled(args.devices, duration)
        if args.seed is not None:
            scenario = scenario.model_copy(update={"seed": args.seed})
    except (ScenarioError, ValueError) as exc:
        parser.error(str(exc))
    fleet = scenario.fleet
    carts = sum(s.carts for s in fleet.carts.stores)
    tools = sum(s.tools for s in fleet.tools.sites)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if carts + tools + 1000 > soft:
        console.print(
            f"[yellow]open files limit {soft} (hard {hard}): {carts + tools} MQTT devices "
            "each hold a socket here and one in Mosquitto; raise it with ulimit -n[/]"
        )
    note(
        f"load: {args.devices:,} devices ({fleet.brushes.count:,} brushes, {carts:,} carts, "
        f"{tools:,} tools), {scenario.duration / 3600:g} h simulated, as fast as it goes"
    )
    cpu = CpuWatch()
    marks: dict[str, float] = {}
    cpu_marks: dict[str, float] = {}
    started = time.monotonic()
    process_cpu = time.process_time()
    with tempfile.TemporaryDirectory(prefix="tether-simbench-") as tmp:
        workdir = args.workdir or Path(tmp)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as progress:
            building = progress.add_task("building the fleet", total=1, status="")
            living = progress.add_task(
                "simulating", total=scenario.duration, status="", start=False
            )
            last_stage = [""]

            def on_stage(what: str, done: int, total: int) -> None:
                if what == "landing" and "lived" not in marks:
                    marks["lived"] = time.monotonic()
                    cpu.look()
                elif "lived" not in marks:
                    marks["built"] = time.monotonic()  # the last building step seen
                    cpu_marks["built"] = time.process_time()
                if what != last_stage[0]:
                    note(f"{what}")
                    last_stage[0] = what
                progress.update(
                    building, description=what, completed=done, total=max(total, 1), status=""
                )

            next_note = [0.0]

            def on_tick(elapsed: float, span: float, counts: Counter[str]) -> None:
                if "first_tick" not in marks:
                    marks["first_tick"] = time.monotonic()
                    cpu.look()
                    cpu_marks["sim_at_start"] = cpu.seconds
                cpu.look()
                made = sum(
                    v
                    for k, v in counts.items()
                    if k.endswith(".records") and not k.startswith("history.")
                )
                status = (
                    f"{elapsed / 3600:5.2f} h of {span / 3600:g} h, {made:,} records made, "
                    f"MQTT up {counts['mqtt.connected']:,}"
                )
                progress.start_task(living)
                progress.update(living, completed=min(elapsed, span), status=status)
                if time.monotonic() >= next_note[0]:
                    note(status)
                    next_note[0] = time.monotonic() + 30

            report = run_scenario(scenario, workdir, None, on_stage, on_tick)
        done = time.monotonic()
    mosquitto = resource.getrusage(resource.RUSAGE_CHILDREN)
    built = marks.get("built", started)
    live = done - built
    result = figures(report, live)
    total_cpu = time.process_time() - cpu_marks.get("built", process_cpu)
    sim_cpu = cpu.seconds - cpu_marks.get("sim_at_start", 0.0)
    broker_cpu = mosquitto.ru_utime + mosquitto.ru_stime

    table = Table(title=f"simulator load mode ({scenario.name}, seed {scenario.seed})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, Any]] = [
        ("devices simulated", f"{result.devices:,}"),
        ("  toothbrushes (phones, HTTPS)", f"{result.by_class.get('oral-care-brush', 0):,}"),
        ("  carts and tools (MQTT, mutual TLS)", f"{result.mqtt_devices:,}"),
        ("  MQTT-connected at once, at most", f"{result.mqtt_peak:,}"),
        ("simulated time covered", f"{result.simulated_seconds / 3600:.2f} h"),
        ("real seconds: building the fleet", f"{built - started:,.1f}"),
        ("real seconds: lived run, to landed", f"{live:,.1f}"),
        ("simulated seconds per real second", f"{result.speedup:,.0f}"),
        ("records made", f"{result.made:,}"),
        ("records that reached a door", f"{result.reached:,}"),
        ("records landed", f"{result.landed:,}"),
        ("records made per second", f"{result.made_per_second:,.0f}"),
        ("records landed per second", f"{result.landed_per_second:,.0f}"),
        ("CPU-s, this process (lived run)", f"{total_cpu:,.1f}"),
        ("  simulator's threads (engine, MQTT hub)", f"{sim_cpu:,.1f}"),
        ("  share of this process's CPU", f"{sim_cpu / total_cpu:.0%}" if total_cpu else "-"),
        ("CPU-s, Mosquitto", f"{broker_cpu:,.1f}"),
        ("cores busy on average", f"{(total_cpu + broker_cpu) / live:.2f} of {os.cpu_count()}"),
        ("check", "match" if result.ok else f"{len(report.comparison.mismatches)} mismatches"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    if not result.ok:
        for m in report.comparison.mismatches[:20]:
            console.print(f"  {m}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
