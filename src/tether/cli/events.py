"""``tether events`` and ``tether replay``: what landed, what was lost, what was refused."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from tether.cli.context import console, platform
from tether.gate.replay import replay as replay_raw
from tether.service.reads import device_gaps
from tether.store.telemetry.base import TelemetryEvent

app = typer.Typer(no_args_is_help=True, help="Events that landed, gaps and rejects.")


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def _row(table: Table, e: TelemetryEvent) -> None:
    body = json.dumps(e.body, separators=(",", ":"))
    table.add_row(
        str(e.seq if e.seq is not None else e.dedupe_key),
        _when(e.ts),
        "yes" if e.clock_corrected else "",
        e.type,
        body[:80],
    )


@app.command()
def tail(
    ctx: typer.Context,
    serial: str,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new ones.")] = False,
) -> None:
    """A device's latest events (with --follow, new ones as they land; Ctrl-C stops)."""
    with platform(ctx) as p:
        p.registry.get_device(serial)
        events = list(reversed(p.telemetry.latest(serial, limit)))
        table = Table("seq", "time", "clock fixed", "type", "body", title=serial)
        for e in events:
            _row(table, e)
        console.print(table)
        seen = {e.dedupe_key for e in p.telemetry.latest(serial, 1000)}
        try:
            while follow:
                time.sleep(1)
                for e in reversed(p.telemetry.latest(serial, 200)):
                    if e.dedupe_key not in seen:
                        seen.add(e.dedupe_key)
                        console.print(
                            f"{e.seq}  {_when(e.ts)}  {e.type}  "
                            f"{json.dumps(e.body, separators=(',', ':'))[:100]}"
                        )
        except KeyboardInterrupt:
            pass


@app.command()
def gaps(ctx: typer.Context, serial: str) -> None:
    """Sequence numbers never received: lost (overwritten on the device) or still pending."""
    with platform(ctx) as p:
        p.registry.get_device(serial)
        found = device_gaps(p, serial)
        console.print(f"{serial}: {found['lost_count']} lost, {found['pending_count']} pending")
        for kind in ("lost", "pending"):
            for start, end in found[kind]:
                console.print(f"  {kind:8} {start}" + (f"-{end}" if end != start else ""))


@app.command()
def rejects(
    ctx: typer.Context,
    serial: Annotated[str | None, typer.Argument()] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 20,
) -> None:
    """Rejected records of a device, and reject counts by class, firmware and code."""
    with platform(ctx) as p:
        p.rejects.run_once()
        if serial is not None:
            table = Table("seq", "arrival", "door", "code", "detail", title=f"rejects of {serial}")
            for r in p.rejects.recent(serial, limit):
                table.add_row(str(r.seq or ""), _when(r.arrival), r.door, r.code, r.detail[:70])
            console.print(table)
        counts = Table("class", "firmware", "code", "count", title="reject counts")
        for c in p.rejects.counts(serial):
            counts.add_row(c.device_class or "?", c.fw or "?", c.code, str(c.count))
        console.print(counts)


def replay(
    ctx: typer.Context,
    start: Annotated[int, typer.Option("--from", help="Replay entries after this offset.")] = 0,
    end: Annotated[
        int | None, typer.Option("--to", help="Up to this offset (default: all).")
    ] = None,
) -> None:
    """Judge raw records again through the gate (after a gate fix); prints the outcomes."""
    with platform(ctx) as p:
        raw = p.stream("raw")
        last = raw.last_offset() if end is None else end
        with Progress(console=console) as progress:
            task = progress.add_task("replaying", total=max(0, last - start))
            counts = replay_raw(
                raw, p.replay_gate, start, last, on_progress=lambda n: progress.advance(task, n)
            )
        console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing")
