"""Entry point of the ``tether`` command: one Typer app with a sub-app per area."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tether import __version__
from tether.errors import TetherError

app = typer.Typer(
    name="tether",
    help="tether: device identity, ingestion, privacy tiers, OTA and fleet health.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tether {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", envvar="TETHER_DATA_DIR", help="Where embedded engines keep data."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", envvar="TETHER_CONFIG", help="Settings file (default ./tether.toml)."
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    ctx.obj = {"data_dir": data_dir, "config": config}


def _register() -> None:
    from tether.cli import (
        accounts,
        ca,
        certs,
        demo,
        devices,
        events,
        firmware,
        migrate,
        rollout,
        rubric,
        serve,
    )
    from tether.masking.cli import app as mask_app
    from tether.sim.cli import app as sim_app

    app.add_typer(ca.app, name="ca")
    app.add_typer(devices.app, name="devices")
    app.add_typer(accounts.app, name="accounts")
    app.add_typer(certs.app, name="certs")
    app.add_typer(firmware.app, name="firmware")
    app.add_typer(rollout.app, name="rollout")
    app.add_typer(serve.broker_app, name="broker")
    app.add_typer(events.app, name="events")
    app.command("replay")(events.replay)
    app.command("serve")(serve.serve)
    app.command("demo")(demo.demo)
    app.command("migrate")(migrate.migrate)
    app.command("worker")(serve.worker)
    app.command("rubric")(rubric.rubric)
    app.add_typer(mask_app, name="mask", help="Mask analytics exports by a PII rubric.")
    app.add_typer(sim_app, name="sim", help="The fleet simulator: run scenarios against tether.")


_register()


def main() -> None:
    try:
        app()
    except TetherError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
