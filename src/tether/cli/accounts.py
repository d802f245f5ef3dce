"""``tether accounts``: pseudonymous accounts, their tokens, bonds and the audit log."""

from __future__ import annotations

import datetime as dt
import getpass
from typing import Annotated

import typer
from rich.table import Table

from tether.cli.context import console, platform

app = typer.Typer(no_args_is_help=True, help="Accounts, bearer tokens, device bonds, pairing.")


def _operator() -> str:
    """Who runs the command, for the audit log."""
    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):
        return "operator"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@app.command()
def create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")],
) -> None:
    """Create an account and its first token; the token is shown only this once."""
    with platform(ctx) as p:
        now = p.clock()
        actor = _operator()
        account = p.accounts.create_account(tenant, now, actor=actor)
        token = p.accounts.issue_token(account.id, now, actor=actor)
    typer.echo(f"account {account.id}")
    typer.echo(f"token   {token}")
    console.print("tether keeps only the token's hash: hand it to the app now.", style="dim")


@app.command()
def token(ctx: typer.Context, account: str) -> None:
    """Issue a new bearer token for an account (shown once); old tokens stay valid."""
    with platform(ctx) as p:
        issued = p.accounts.issue_token(account, p.clock(), actor=_operator())
    typer.echo(issued)


@app.command("revoke-token")
def revoke_token(
    ctx: typer.Context,
    token: Annotated[str, typer.Argument(help="The token to revoke.")],
) -> None:
    """Revoke a bearer token: its next request gets 401."""
    with platform(ctx) as p:
        p.accounts.revoke_token(token, p.clock(), actor=_operator())
    console.print("token revoked")


@app.command()
def bond(
    ctx: typer.Context,
    serial: str,
    account: str,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the device's current owner.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, for the audit log (needed with --force).")
    ] = None,
) -> None:
    """Make an account a device's first owner (factory or shop assignment).

    A device that already has an owner moves only by pairing (a button hold on the
    device); --force with --reason overrides that, and is audited.
    """
    if force and not (reason or "").strip():
        raise typer.BadParameter("--force replaces a device's owner: say why with --reason '...'")
    with platform(ctx) as p:
        made = p.accounts.bond(
            serial,
            account,
            p.clock(),
            actor=_operator(),
            reason=reason or "initial assignment",
            force=force,
        )
    console.print(f"{made.serial} is bonded to {made.account_id}")


@app.command()
def show(ctx: typer.Context, account: str) -> None:
    """Show an account and the devices it owns."""
    with platform(ctx) as p:
        found = p.accounts.get_account(account)
        owned = p.accounts.bonds_of(account)
    console.print(f"[bold]account[/]: {found.id}")
    console.print(f"[bold]tenant[/]: {found.tenant}")
    console.print(f"[bold]created[/]: {_when(found.created_at)}")
    if not owned:
        console.print("owns no devices")
        return
    table = Table("serial", "bonded since")
    for b in owned:
        table.add_row(b.serial, _when(b.since))
    console.print(table)
    console.print(f"{len(owned)} device{'s' if len(owned) != 1 else ''}")


@app.command()
def audit(
    ctx: typer.Context,
    serial: Annotated[
        str | None, typer.Option("--serial", "-s", help="Only entries about this device.")
    ] = None,
    account: Annotated[
        str | None, typer.Option("--account", "-a", help="Only entries about this account.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many entries.")] = 50,
) -> None:
    """The audit log, newest first: accounts, tokens, challenges, pairings, bonds."""
    if serial and account:
        raise typer.BadParameter("give --serial or --account, not both")
    with platform(ctx) as p:
        entries = p.accounts.audit(subject=serial or account, limit=limit)
    if not entries:
        console.print("no audit entries")
        return
    for e in entries:
        typer.echo("\t".join((_when(e.at), e.actor, e.action, e.subject, e.detail)))
