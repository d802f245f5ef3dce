"""What every command shares: the settings from the global options, and the platform."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from tether.platform import Platform
from tether.settings import Settings, load_settings

console = Console()


def settings_from(ctx: typer.Context) -> Settings:
    opts: dict[str, Any] = ctx.find_root().obj or {}
    overrides: dict[str, Any] = {}
    if opts.get("data_dir") is not None:
        overrides["data_dir"] = opts["data_dir"]
    config: Path | None = opts.get("config")
    return load_settings(overrides, config_file=config)


@contextmanager
def platform(ctx: typer.Context) -> Iterator[Platform]:
    opened = Platform.open(settings_from(ctx))
    try:
        yield opened
    finally:
        opened.close()


def write_out(text: str, out: Path | None) -> None:
    """Write to a file when ``--out`` is given, else to standard output."""
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        out.write_text(text)
        console.print(f"wrote {out}")
