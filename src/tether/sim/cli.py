"""``tether sim``: run scenarios of simulated devices against a platform of their own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tether.sim.errors import ScenarioError
from tether.sim.report import render, render_devices
from tether.sim.run import run_dir, run_scenario
from tether.sim.scenario import load_scenario, parse_speed, shipped_scenarios

app = typer.Typer(no_args_is_help=True, help="The fleet simulator: scenarios of simulated devices.")
console = Console()


@app.command("run")
def run(
    scenario: Annotated[str, typer.Argument(help="A scenario file, or a shipped scenario's name.")],
    speed: Annotated[
        str | None,
        typer.Option(help="Simulated/real time (1w/1m), a factor, or max; default the scenario's."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Another seed than the scenario's.")] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Keep the platform and device files here (a new or empty directory); "
            "by default a temporary one, removed after the run."
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write the whole report as JSON to this file.")
    ] = None,
    devices: Annotated[
        int, typer.Option(min=0, help="Also list this many devices, one row each.")
    ] = 0,
) -> None:
    """Run SCENARIO against a fresh embedded platform; exit 1 if what landed differs."""
    overrides: dict[str, object] = {}
    if seed is not None:
        overrides["seed"] = seed
    chosen = load_scenario(scenario, overrides)
    pace: float | str | None = "scenario"
    if speed is not None:
        try:
            pace = parse_speed(speed)
        except ValueError as exc:
            raise ScenarioError(f"--speed: {exc}") from None
    with run_dir(workdir, "tether-sim-") as where:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            building = progress.add_task("building the fleet", total=1, status="")
            living = progress.add_task("simulating", total=chosen.duration, status="", start=False)

            def on_stage(what: str, done: int, total: int) -> None:
                progress.update(
                    building, description=what, completed=done, total=max(total, 1), status=""
                )

            def on_tick(elapsed: float, span: float, counts: object) -> None:
                progress.start_task(living)
                progress.update(
                    living,
                    completed=min(elapsed, span),
                    status=f"day {elapsed / 86400:.2f} of {span / 86400:.2f}",
                )

            result = run_scenario(chosen, where, pace, on_stage, on_tick)
        if devices:
            render_devices(result, console, devices)
        render(result, console)
        if report is not None:
            report.write_text(json.dumps(result.to_json(), indent=2) + "\n")
            console.print(f"report: {report}")
        if workdir is not None:
            console.print(
                f"platform kept in {where / 'platform'}; look with: "
                f"tether --data-dir {where / 'platform'} events gaps SERIAL"
            )
    if not result.ok:
        raise typer.Exit(1)


@app.command("validate")
def validate(
    scenario: Annotated[str, typer.Argument(help="A scenario file, or a shipped scenario's name.")],
) -> None:
    """Check a scenario file and say what it would run."""
    chosen = load_scenario(scenario)
    console.print(
        f"{chosen.name}: {chosen.devices:,} devices for {chosen.duration / 3600:,.1f} simulated "
        f"hours; valid"
    )


@app.command("list")
def list_scenarios() -> None:
    """The scenarios shipped with tether."""
    for name, path in shipped_scenarios().items():
        chosen = load_scenario(path)
        console.print(f"[bold]{name}[/]: {chosen.description.strip()}")
