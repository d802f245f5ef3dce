"""Entry point of the ``tether`` command: one Typer app with a sub-app per area."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tether.errors import TetherError

app = typer.Typer(
    name="tether",
    help="tether: device identity, ingestion, privacy tiers, OTA and fleet health.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _register() -> None:
    from tether.masking.cli import app as mask_app

    app.add_typer(mask_app, name="mask", help="Mask analytics exports by a PII rubric.")


def main() -> None:
    _register()
    try:
        app()
    except TetherError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
