"""``tether ca``: tenants' certificate authorities."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from rich.table import Table

from tether.cli.context import console, platform, write_out
from tether.timeparse import parse_duration

app = typer.Typer(no_args_is_help=True, help="Tenants' root and manufacturing CAs.")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")]


@app.command()
def init(
    ctx: typer.Context,
    tenant: Tenant,
    jit: Annotated[bool, typer.Option(help="Register unknown devices on first contact.")] = False,
) -> None:
    """Create a tenant with a P-256 root CA and a first manufacturing CA."""
    with platform(ctx) as p:
        root, mfg = p.authority.init_tenant(tenant, jit=jit)
        console.print(f"tenant [bold]{tenant}[/]: root CA #{root.id}, manufacturing CA #{mfg.id}")
        console.print(f"keys in {p.settings.resolved_keys_url().split('?')[0]}")


@app.command()
def rotate(
    ctx: typer.Context,
    tenant: Tenant,
    overlap: Annotated[str, typer.Option(help="How long the old CA stays trusted.")] = "90d",
) -> None:
    """Start a new manufacturing CA; the old one stays trusted for the overlap window."""
    seconds = parse_duration(overlap)
    with platform(ctx) as p:
        new = p.authority.rotate(tenant, seconds / 86400)
        console.print(
            f"manufacturing CA #{new.id} now issues for {tenant}; the previous "
            f"ones are trusted for {overlap} more"
        )


@app.command("list")
def list_cas(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
) -> None:
    """List CAs with their status and trust window."""
    with platform(ctx) as p:
        table = Table("id", "tenant", "kind", "name", "status", "trusted until", "expires")
        for ca in p.registry.list_cas(tenant):
            until = (
                dt.datetime.fromtimestamp(ca.trusted_until, dt.UTC).isoformat(timespec="minutes")
                if ca.trusted_until
                else ""
            )
            table.add_row(
                str(ca.id),
                ca.tenant or "(platform)",
                ca.kind,
                ca.name,
                ca.status,
                until,
                ca.cert.not_valid_after_utc.date().isoformat(),
            )
        console.print(table)


@app.command()
def export(ctx: typer.Context, tenant: Tenant, out: Out = None) -> None:
    """Print the tenant's trusted manufacturing CAs and root as one PEM bundle."""
    with platform(ctx) as p:
        write_out(p.authority.chain_pem(tenant), out)


@app.command()
def crl(ctx: typer.Context, tenant: Tenant, out: Out = None) -> None:
    """Print the current revocation lists of the tenant's trusted manufacturing CAs."""
    with platform(ctx) as p:
        lists = [
            p.authority.crl(ca).public_bytes(serialization.Encoding.PEM).decode()
            for ca in p.authority.trusted_manufacturing(tenant)
        ]
        write_out("".join(lists), out)


@app.command()
def jit(
    ctx: typer.Context,
    tenant: Tenant,
    enable: Annotated[bool, typer.Option("--on/--off", help="Turn JIT registration on or off.")],
) -> None:
    """Turn just-in-time registration on or off for a tenant."""
    with platform(ctx) as p:
        p.registry.set_jit(tenant, enable)
        console.print(f"just-in-time registration for {tenant}: {'on' if enable else 'off'}")
