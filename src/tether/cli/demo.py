"""``tether demo``: a fresh platform, a mixed simulated fleet, and a live view of what lands.

In a terminal the view is a Rich live display refreshed every second; with
``--headless`` (or when the output is not a terminal) it prints one line every
``--every`` seconds instead. Ctrl-C, or SIGTERM, stops the run and every
process it started.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tether.service.fleet import FleetSnapshot
from tether.sim.demo import DEMO, Demo, demo_scenario
from tether.sim.errors import ScenarioError
from tether.sim.report import render
from tether.sim.run import run_dir
from tether.timeparse import parse_duration

console = Console()
CLASSES = {"oral-care-brush": "brush", "retail-cart": "cart", "power-tool": "tool"}


def _short(device_class: str) -> str:
    return CLASSES.get(device_class, device_class)


def _when(demo: Demo) -> str:
    p = demo.progress
    if not p.started:
        return p.stage
    now = dt.datetime.fromtimestamp(p.started + p.elapsed, dt.UTC)
    offset = dt.timedelta(seconds=demo.scenario.utc_offset)
    local = (now + offset).strftime("%a %H:%M")
    return f"{local} local, day {p.elapsed / 86400:.2f} of {p.span / 86400:.2f}"


def line(demo: Demo, snap: FleetSnapshot | None, real: float) -> str:
    """One headless line: time, presence per class, outcomes and their rates, gaps, forgeries."""
    head = f"+{real:5.0f}s {_when(demo)}"
    if snap is None:
        return f"{head} | {demo.progress.stage}"
    online: dict[str, list[int]] = {}
    for p in snap.presence:
        total = online.setdefault(_short(p.device_class), [0, 0])
        total[0] += p.online
        total[1] += p.seen
    presence = " ".join(f"{cls} {on}/{seen}" for cls, (on, seen) in sorted(online.items()))
    r = snap.rates
    return (
        f"{head} | online {presence or '-'} | accepted {snap.accepted} "
        f"({r['accepted']:.0f}/s) duplicate {snap.duplicates} ({r['duplicates']:.0f}/s) "
        f"rejected {snap.rejected} ({r['rejected']:.0f}/s) | gaps {snap.devices_with_gaps} "
        f"devices (lost {snap.lost}, pending {snap.pending}) | forgeries refused "
        f"{snap.forgeries_refused}"
    )


def view(demo: Demo, snap: FleetSnapshot | None, real: float) -> Group:
    """The live display: presence per class and site, outcomes, gaps, recent rejects."""
    title = Text.assemble(
        ("tether demo", "bold"),
        f"  {demo.scenario.name} · {_when(demo)} · {real:.0f} s · Ctrl-C stops",
    )
    if snap is None:
        return Group(title, Text(f"{demo.progress.stage} ..."))
    presence = Table(title=f"devices online (landed within {snap.window / 60:.0f} min)")
    for name in ("class", "site", "online", "seen"):
        presence.add_column(name, justify="right" if name in ("online", "seen") else "left")
    for p in snap.presence:
        presence.add_row(_short(p.device_class), p.site, str(p.online), str(p.seen))
    flow = Table(title="records")
    for name in ("outcome", "total", "per second"):
        flow.add_column(name, justify="left" if name == "outcome" else "right")
    for name, total in (
        ("accepted", snap.accepted),
        ("duplicate", snap.duplicates),
        ("rejected", snap.rejected),
    ):
        key = "duplicates" if name == "duplicate" else name
        flow.add_row(name, f"{total:,}", f"{snap.rates[key]:,.0f}")
    health = Table(title="gaps and attacks", show_header=False)
    health.add_column()
    health.add_column(justify="right")
    health.add_row("devices with gaps", str(snap.devices_with_gaps))
    health.add_row("records lost (overwritten)", f"{snap.lost:,}")
    health.add_row("records pending", f"{snap.pending:,}")
    health.add_row("forgeries refused", str(snap.forgeries_refused))
    for code, count in snap.rejects_by_code.items():
        health.add_row(f"rejected {code}", str(count))
    recent = Table(title="recent rejects")
    for name in ("arrival", "device", "door", "code", "detail"):
        recent.add_column(name, overflow="ellipsis", no_wrap=name != "detail")
    offset = dt.timedelta(seconds=demo.scenario.utc_offset)
    for r in snap.recent_rejects:
        at = (dt.datetime.fromtimestamp(r.arrival / 1000, dt.UTC) + offset).strftime("%a %H:%M")
        recent.add_row(at, r.serial, r.door, r.code, r.detail[:80])
    grid = Table.grid(padding=(0, 2))
    grid.add_row(presence, Group(flow, health))
    return Group(title, grid, recent)


def demo(
    run_for: Annotated[
        str | None,
        typer.Option(
            "--for", help="Stop after this much real time (45s, 5m); the span shrinks to fit."
        ),
    ] = None,
    speed: Annotated[
        str | None, typer.Option(help="Simulated/real time (1d/2m) or a factor; default 1d/2m.")
    ] = None,
    scenario: Annotated[
        str, typer.Option(help="Another scenario file or shipped name to show.")
    ] = DEMO,
    headless: Annotated[
        bool, typer.Option(help="Print a line every --every seconds instead of the live view.")
    ] = False,
    every: Annotated[float, typer.Option(min=0.2, help="Seconds between headless lines.")] = 5.0,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Keep the platform's files here (a new or empty directory)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Write the run's report and the fleet view at its end as JSON here."),
    ] = None,
) -> None:
    """Run tether with a simulated fleet of a few hundred devices and watch what lands.

    tether's log, security events included, goes to demo.log in the work directory.
    """
    seconds = None if run_for is None else parse_duration(run_for)
    chosen = demo_scenario(scenario, seconds, speed)
    with run_dir(workdir, "tether-demo-") as where:
        run = Demo(chosen, where)
        _watch(run, where, headless, every)
    _finish(run, report)


def _watch(run: Demo, where: Path, headless: bool, every: float) -> None:
    """Show the run until it ends; Ctrl-C or SIGTERM stops it and what it started."""
    log = _log_to(where / "demo.log")

    def terminate(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    began = time.monotonic()
    try:
        run.start()
        if headless or not sys.stdout.isatty():
            _headless(run, began, every)
        else:
            with Live(view(run, None, 0), console=console, refresh_per_second=2) as live:
                while run.running:
                    live.update(view(run, run.snapshot(), time.monotonic() - began))
                    run.wait(1.0)
    except KeyboardInterrupt:
        console.print("stopping: the fleet, the doors and Mosquitto ...")
        run.stop()
        console.print(f"stopped after {time.monotonic() - began:.0f} s")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        if run.running:
            run.stop()
        log()


def _log_to(path: Path) -> Callable[[], None]:
    """Send tether's log (security events among it) to ``path`` while the view owns the screen.

    Returns what puts the log back.
    """
    logger = logging.getLogger("tether")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False

    def restore() -> None:
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()

    return restore


def _headless(run: Demo, began: float, every: float) -> None:
    next_line = 0.0
    while run.running:
        real = time.monotonic() - began
        if real >= next_line:
            console.print(line(run, run.snapshot(), real), soft_wrap=True)
            next_line = real + every
        run.wait(min(0.5, every))


def _finish(run: Demo, report: Path | None) -> None:
    if run.error is not None:
        raise run.error
    result = run.report
    if result is None:
        raise ScenarioError("the demo ended without a report")
    final = run.final
    if final is not None:
        console.print(line(run, final, result.real_seconds), soft_wrap=True)
    render(result, console)
    if report is not None:
        doc: dict[str, Any] = {"run": result.to_json(), "fleet": final and final.to_json()}
        report.write_text(json.dumps(doc, indent=2) + "\n")
        console.print(f"report: {report}")
    if not result.ok:
        raise typer.Exit(1)
