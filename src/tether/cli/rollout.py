"""``tether rollout``: staged firmware rollouts, their halts, and the human decisions."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Annotated

import typer
from rich.table import Table

from tether.cli.context import console, platform
from tether.rollouts.health import HaltPolicy, health_by_hw
from tether.rollouts.model import DEVICE_STATES, CohortSpec, Rollout, RolloutError
from tether.rollouts.plan import DEFAULT_PLAN, parse_windows
from tether.rollouts.store import RolloutStore

app = typer.Typer(no_args_is_help=True, help="Staged firmware rollouts that halt on fleet health.")

Many = Annotated[list[str] | None, typer.Option()]
_SPARKS = " ▁▂▃▄▅▆▇█"


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M")


@app.command("create")
def create(
    ctx: typer.Context,
    device_class: Annotated[str, typer.Option("--class", "-c", help="Device class.")],
    version: Annotated[str, typer.Option("--version", help="Firmware version (in the catalog).")],
    hw: Annotated[
        list[str] | None, typer.Option("--hw", help="Hardware revision (repeat).")
    ] = None,
    from_fw: Annotated[
        list[str] | None, typer.Option("--from-fw", help="Only devices on this firmware.")
    ] = None,
    site: Annotated[
        list[str] | None, typer.Option("--site", help="Site, or a pattern for a region: 'de-*'.")
    ] = None,
    device: Annotated[list[str] | None, typer.Option("--device", help="Explicit devices.")] = None,
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="Only these tenants.")
    ] = None,
    plan: Annotated[str, typer.Option("--plan", help="Stages: NAME:COUNT:SOAK or SHARE%:SOAK.")] = (
        DEFAULT_PLAN
    ),
    window: Annotated[
        list[str] | None,
        typer.Option("--window", help="Maintenance window SITE=22:00-06:00[@Europe/Berlin]."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the stratified order.")] = 0,
    fault_ratio: Annotated[
        float, typer.Option(help="Halt when the new version's fault rate exceeds this x the old.")
    ] = HaltPolicy.fault_ratio,
    survival_margin: Annotated[
        float, typer.Option(help="Halt when a revision's 72 h survival trails this much.")
    ] = HaltPolicy.survival_margin,
    transfer_max: Annotated[
        float, typer.Option(help="Halt when this share of attempted updates failed.")
    ] = HaltPolicy.transfer_max_share,
) -> None:
    """Plan a rollout: cohort, stratified stages; refused if devices lack a needed trust anchor."""
    spec = CohortSpec(
        device_class,
        tuple(hw or ()),
        tuple(from_fw or ()),
        tuple(site or ()),
        tuple(device or ()),
        tuple(tenant or ()),
    )
    policy = HaltPolicy(
        fault_ratio=fault_ratio, survival_margin=survival_margin, transfer_max_share=transfer_max
    )
    with platform(ctx) as p:
        planned = p.rollouts.create(spec, version, plan, parse_windows(window or ()), seed, policy)
        r = planned.rollout
        console.print(
            f"rollout [bold]{r.id}[/]: {r.device_class} {r.version} to {planned.cohort} devices "
            f"in {len(r.stages)} stages"
        )
        for s in r.stages:
            console.print(f"  stage {s.index + 1}: {s.size} devices, {s.stage.describe()}")
        for name, text in r.windows.items():
            console.print(f"  site {name}: notified only within {text}")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every rollout, newest last."""
    with platform(ctx) as p:
        table = Table("id", "class", "version", "state", "stage", "devices", "created", "halts")
        for r in p.rollout_store.rollouts():
            current = r.current_stage
            total = sum(s.size for s in r.stages)
            stage = "-" if current is None else f"{current.index + 1}/{len(r.stages)}"
            table.add_row(
                str(r.id),
                r.device_class,
                r.version,
                r.state,
                stage,
                str(total),
                _when(r.created_at),
                str(len(r.halts)),
            )
        console.print(table)


@app.command("status")
def status(
    ctx: typer.Context,
    rollout_id: Annotated[int | None, typer.Argument(help="Rollout (default: the newest).")] = None,
) -> None:
    """Stages, counts by state, halt reasons, health per hardware revision over time."""
    with platform(ctx) as p:
        store = p.rollout_store
        if rollout_id is None:
            every = store.rollouts()
            if not every:
                raise RolloutError(
                    "there are no rollouts yet; make one with: tether rollout create"
                )
            rollout_id = every[-1].id
        _status(store, store.get(rollout_id), p.clock())


def _status(store: RolloutStore, r: Rollout, now: float) -> None:
    console.print(
        f"[bold]rollout {r.id}[/]: {r.device_class} {r.version}, [bold]{r.state}[/], "
        f"created {_when(r.created_at)}" + (f", ended {_when(r.ended_at)}" if r.ended_at else "")
    )
    counts = store.counts(r.id)
    stages = Table("stage", "plan", "devices", "started", "ended", "by state", title="stages")
    for s in r.stages:
        c = counts.get(s.index, Counter())
        stages.add_row(
            str(s.index + 1),
            s.stage.describe(),
            str(s.size),
            _when(s.started_at),
            _when(s.ended_at),
            ", ".join(f"{state} {c[state]}" for state in DEVICE_STATES if c.get(state)),
        )
    console.print(stages)
    devices = store.devices(r.id)
    back = [d for d in devices if d.state == "rolled_back"]
    if back:
        after = sum(1 for d in back if d.succeeded)
        console.print(
            f"[bold red]rolled back:[/] {len(back)} from {r.version} "
            f"({after} after booting it clean)"
        )
    failed = Counter(d.reason or "unknown" for d in devices if d.state == "failed")
    if failed:
        console.print("failures: " + ", ".join(f"{why} x{n}" for why, n in failed.most_common(5)))
    if r.halts:
        halts = Table("rule", "hw", "since", "why", title="[red]halted: the next stage waits[/]")
        for h in r.halts:
            halts.add_row(h.rule, h.hw or "-", _when(h.at), h.detail)
        console.print(halts)
        console.print(f"decide: tether rollout release {r.id}  |  tether rollout abort {r.id}")
    if r.return_to_previous:
        going = [d for d in devices if not r.return_hw or d.hw in r.return_hw]
        states = Counter(d.state for d in going)
        on_new = states["installed"] + states["booted_clean"]
        which = f" (hw {', '.join(r.return_hw)})" if r.return_hw else ""
        console.print(
            f"aborted with return to the previous version{which}: {states['returned']} "
            f"returned, {states['returning']} on their way, {on_new} still to return"
        )
    policy = HaltPolicy.from_dict(r.policy)
    health = health_by_hw(devices, store.last_seen(r.id), now, policy)
    history = store.health(r.id)
    table = Table("hw", "updated", "still reporting", "old version", "over time", title="health")
    for hw, rev in health.items():
        share = rev.share
        points = [rep / upd for _, rev, upd, rep, _ in history if rev == hw and upd]
        table.add_row(
            hw,
            str(rev.updated),
            f"{rev.reporting} ({share:.0%})" if share is not None else "-",
            f"{rev.baseline:.0%}" if rev.baseline is not None else "-",
            _spark(points[-40:]),
        )
    if health:
        console.print(table)
    else:
        console.print("health: no device runs the new version yet")


def _spark(points: list[float]) -> str:
    return "".join(_SPARKS[max(0, min(8, round(v * 8)))] for v in points) or "-"


@app.command("release")
def release(ctx: typer.Context, rollout_id: Annotated[int, typer.Argument()]) -> None:
    """A human decision: continue past a halt, or start the next stage now."""
    with platform(ctx) as p:
        console.print(f"rollout {rollout_id}: {p.rollouts.release(rollout_id)}")


@app.command("abort")
def abort(
    ctx: typer.Context,
    rollout_id: Annotated[int, typer.Argument()],
    return_to_previous: Annotated[
        bool, typer.Option("--return-to-previous", help="Send updated devices back.")
    ] = False,
    hw: Annotated[
        list[str] | None,
        typer.Option("--hw", help="With --return-to-previous: only these revisions go back."),
    ] = None,
) -> None:
    """End a rollout; with --return-to-previous, updated devices go back to their old version."""
    with platform(ctx) as p:
        on_new = p.rollouts.abort(rollout_id, return_to_previous, hw or ())
        then = "to be returned to the previous version" if return_to_previous else "stay on it"
        if hw:
            then += f" (hw {', '.join(hw)})"
        console.print(f"rollout {rollout_id} aborted; {on_new} device(s) on the new version {then}")


def _opt(kind_values: dict[str, list[str] | None]) -> list[tuple[str, str]]:
    pairs = [(k, v) for k, vs in kind_values.items() for v in vs or ()]
    if not pairs:
        raise RolloutError("name at least one --tenant, --site or --device")
    return pairs


@app.command("opt-out")
def opt_out(
    ctx: typer.Context,
    tenant: Many = None,
    site: Many = None,
    device: Many = None,
) -> None:
    """Leave tenants, sites or devices out of every rollout made from now on."""
    pairs = _opt({"tenant": tenant, "site": site, "device": device})
    with platform(ctx) as p:
        for kind, name in pairs:
            p.rollout_store.opt_out(kind, name, p.clock())
            console.print(f"{kind} {name}: opted out of rollouts")


@app.command("opt-in")
def opt_in(
    ctx: typer.Context,
    tenant: Many = None,
    site: Many = None,
    device: Many = None,
) -> None:
    """Undo an opt-out."""
    pairs = _opt({"tenant": tenant, "site": site, "device": device})
    with platform(ctx) as p:
        for kind, name in pairs:
            done = p.rollout_store.opt_in(kind, name)
            console.print(f"{kind} {name}: " + ("opted in" if done else "was not opted out"))
