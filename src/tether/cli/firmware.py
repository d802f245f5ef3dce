"""``tether firmware``: the firmware-signing key (images and rollouts come later)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization

from tether.cli.context import console, platform, write_out

app = typer.Typer(no_args_is_help=True, help="Firmware signing.")


@app.command("key-init")
def key_init(ctx: typer.Context) -> None:
    """Create the firmware-signing key (P-256), apart from the CA keys."""
    with platform(ctx) as p:
        p.firmware_key(create=True)
        console.print(
            f"firmware-signing key created in "
            f"{p.settings.resolved_firmware_keys_url().split('?')[0]}"
        )


@app.command("key-export")
def key_export(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", "-o")] = None,
) -> None:
    """Print the firmware-signing public key (PEM), the trust anchor devices carry."""
    with platform(ctx) as p:
        pem = p.firmware_public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        write_out(pem.decode(), out)
