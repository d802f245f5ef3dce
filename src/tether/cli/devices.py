"""``tether devices``: provisioning, enrolment, renewal and revocation."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tether.cli.context import console, platform, write_out
from tether.errors import IdentityError
from tether.identity.ca import to_pem

app = typer.Typer(no_args_is_help=True, help="Device identities in the registry.")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")]


@app.command()
def provision(
    ctx: typer.Context,
    tenant: Tenant,
    device_class: Annotated[str, typer.Option("--class", "-c", help="Device class.")],
    hw: Annotated[str, typer.Option("--hw", help="Hardware revision.")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many devices.")] = 1,
    prefix: Annotated[
        str | None, typer.Option(help="Serial prefix (default: class initials).")
    ] = None,
) -> None:
    """Make N simulated devices: key in a secure element, certificate, registry entry."""
    with (
        platform(ctx) as p,
        Progress(
            TextColumn("provisioning"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task("provision", total=count)
        started = time.perf_counter()
        made = p.provisioner.provision(
            p.secure_elements,
            tenant,
            device_class,
            hw,
            count,
            prefix=prefix,
            on_progress=lambda n: progress.advance(task, n),
        )
        elapsed = time.perf_counter() - started
    console.print(
        f"{len(made)} devices of class {device_class} (hw {hw}) for {tenant} in "
        f"{elapsed:.1f} s ({len(made) / elapsed:,.0f}/s); first: {made[0].serial}"
    )


@app.command()
def enroll(
    ctx: typer.Context,
    csr: Annotated[Path, typer.Option("--csr", exists=True, dir_okay=False, help="CSR file.")],
    tenant: Tenant,
    device_class: Annotated[str, typer.Option("--class", "-c", help="Device class.")],
    hw: Annotated[str, typer.Option("--hw", help="Hardware revision.")],
    out: Out = None,
) -> None:
    """Issue a certificate for a key made elsewhere (a factory's real hardware)."""
    with platform(ctx) as p:
        cert = p.provisioner.enroll(csr.read_bytes(), tenant, device_class, hw)
        write_out(to_pem(cert), out)


@app.command()
def renew(ctx: typer.Context, serial: str, out: Out = None) -> None:
    """Renew a simulated device's certificate with a CSR from its secure element."""
    with platform(ctx) as p:
        element = p.secure_elements.open(serial)
        device = p.registry.get_device(serial)
        csr = element.make_csr(device.device_class).public_bytes(serialization.Encoding.PEM)
        cert = p.renew(csr)
        p.secure_elements.store_certificates([(serial, to_pem(cert))])
        console.print(f"{serial}: new certificate until {cert.not_valid_after_utc.date()}")
        if out:
            write_out(to_pem(cert), out)


@app.command()
def revoke(
    ctx: typer.Context,
    serial: str,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "revoked by operator",
) -> None:
    """Revoke a device; every front door refuses it within 60 seconds."""
    with platform(ctx) as p:
        device = p.revoke(serial, reason)
        poll = p.settings.identity.revocation_poll_seconds
        console.print(f"{device.serial} revoked; running front doors drop it within {poll:.0f} s")


@app.command()
def show(ctx: typer.Context, serial: str) -> None:
    """Show one device's registry entry."""
    with platform(ctx) as p:
        device = p.registry.get_device(serial)
        for key, value in vars(device).items():
            console.print(f"[bold]{key}[/]: {value}")


@app.command("list")
def list_devices(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    plain: Annotated[bool, typer.Option(help="Tab-separated, every device, for scripts.")] = False,
) -> None:
    """List devices in the registry."""
    with platform(ctx) as p:
        devices = p.registry.list_devices(tenant)
        if plain:
            for d in devices:
                typer.echo("\t".join((d.serial, d.tenant, d.device_class, d.hw, d.status)))
            return
        table = Table(
            "serial",
            "tenant",
            "class",
            "hw",
            "status",
            "source",
            "cert expires",
            title=f"{len(devices)} devices" + (f" (first {limit})" if len(devices) > limit else ""),
        )
        for d in devices[:limit]:
            table.add_row(
                d.serial,
                d.tenant,
                d.device_class,
                d.hw,
                d.status,
                d.source,
                dt.datetime.fromtimestamp(d.not_after, dt.UTC).date().isoformat(),
            )
        console.print(table)


@app.command()
def export(ctx: typer.Context, serial: str, out: Out = None) -> None:
    """Print a device's current certificate (PEM)."""
    with platform(ctx) as p:
        device = p.registry.get_device(serial)
        cert = p.registry.certificate(device.fingerprint)
        if cert is None:
            raise IdentityError(f"{serial} has no current certificate on record")
        write_out(cert.pem, out)
