"""``tether certs``: certificates that need attention."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from tether.cli.context import console, platform
from tether.identity.ca import MANUFACTURING, ROOT
from tether.timeparse import parse_duration

app = typer.Typer(no_args_is_help=True, help="Certificate lifetimes.")


def _date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="minutes")


@app.command()
def expiring(
    ctx: typer.Context,
    within: Annotated[str, typer.Option(help="Horizon, e.g. 30d.")] = "30d",
) -> None:
    """List device and CA certificates that expire within the horizon."""
    with platform(ctx) as p:
        horizon = p.clock() + parse_duration(within)
        table = Table("kind", "subject", "tenant", "expires", title=f"expiring within {within}")
        for ca in p.registry.list_cas():
            if ca.kind in (ROOT, MANUFACTURING) and ca.status != "retired":
                expires = ca.cert.not_valid_after_utc.timestamp()
                if expires < horizon:
                    table.add_row(f"{ca.kind} CA", ca.name, ca.tenant or "", _date(expires))
        rows = p.registry.expiring(horizon)
        for cert in rows:
            device = p.registry.get_device(cert.serial)
            table.add_row("device", cert.serial, device.tenant, _date(cert.not_after))
        console.print(table if table.row_count else f"nothing expires within {within}")
