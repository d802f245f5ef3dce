"""``tether firmware``: the signing key, and firmware artifacts (rollouts come later)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from tether.cli.context import console, platform, write_out
from tether.errors import FirmwareError, NotFoundError
from tether.firmware.artifacts import NewImage
from tether.firmware.catalog import Artifact
from tether.firmware.delta import apply_patch
from tether.firmware.manifest import SignedManifest, read_envelope
from tether.firmware.verify import Device, verify

app = typer.Typer(no_args_is_help=True, help="Firmware signing and artifacts.")

Class = Annotated[str, typer.Option("--class", "-c", help="Device class.")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")]


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


def parse_instant(text: str, option: str) -> int:
    """Seconds since the epoch from ISO 8601 (UTC unless it says otherwise) or a number."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FirmwareError(
            f"{option} {text!r} is not a time; write 2027-01-31, 2027-01-31T12:00:00Z "
            "or seconds since the epoch"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@app.command("add")
def add(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="The firmware image file.")],
    device_class: Class,
    version: Annotated[str, typer.Option("--version", "-v", help="MAJOR.MINOR.PATCH[-label].")],
    hw: Annotated[
        list[str], typer.Option("--hw", help="A hardware revision it runs on (repeat for more).")
    ],
    security_version: Annotated[
        int, typer.Option("--security-version", "-s", help="Anti-rollback security version.")
    ],
    not_before: Annotated[
        str | None, typer.Option("--not-before", help="Valid from (ISO 8601; default now).")
    ] = None,
    not_after: Annotated[
        str | None,
        typer.Option("--not-after", help="Valid until (ISO 8601; default two years on)."),
    ] = None,
    requires_trust: Annotated[
        list[str] | None,
        typer.Option("--requires-trust", help="A trust anchor the image needs (repeat)."),
    ] = None,
    delta_from: Annotated[
        str | None,
        typer.Option("--delta-from", help="Also make a delta from this stored version."),
    ] = None,
) -> None:
    """Store an image, sign its manifest with the firmware key, and record it."""
    new = NewImage(
        path=image,
        device_class=device_class,
        version=version,
        hw=hw,
        security_version=security_version,
        not_before=None if not_before is None else parse_instant(not_before, "--not-before"),
        not_after=None if not_after is None else parse_instant(not_after, "--not-after"),
        requires_trust=requires_trust or [],
        delta_from=delta_from,
    )
    with platform(ctx) as p:
        artifacts = p.artifacts
        size = image.stat().st_size if image.is_file() else 0
        with Progress(
            TextColumn(f"storing {image.name}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=size < 4 << 20,  # small images store faster than a bar can draw
        ) as progress:
            task = progress.add_task("store", total=size)
            added = artifacts.add(new, on_progress=lambda n: progress.advance(task, n))
    a = added.artifact
    for warning in added.warnings:
        console.print(f"[bold yellow]warning:[/] {warning}")
    console.print(
        f"{a.device_class} firmware {a.version} stored: {a.size:,} bytes, sha256 {a.sha256}, "
        f"security version {a.security_version}, hw {', '.join(a.hw)}",
        highlight=False,
    )
    if a.delta_from is not None:
        console.print(f"delta from {a.delta_from}: {a.delta_size:,} bytes")


@app.command("list")
def list_(
    ctx: typer.Context,
    device_class: Annotated[
        str | None, typer.Option("--class", "-c", help="Only this class.")
    ] = None,
) -> None:
    """The firmware versions in the catalog, oldest first within each class."""
    with platform(ctx) as p:
        if device_class is not None and device_class not in p.catalog.names():
            raise NotFoundError(
                f"no device class {device_class!r}; known classes: {', '.join(p.catalog.names())}"
            )
        found = p.artifact_catalog.list(device_class)
    table = Table("class", "version", "security", "hw", "size", "sha256", "delta from", "added")
    for a in found:
        table.add_row(
            a.device_class,
            a.version,
            str(a.security_version),
            ", ".join(a.hw),
            f"{a.size:,}",
            a.sha256[:12],
            a.delta_from or "",
            _iso(int(a.created_at)),
        )
    console.print(table)
    console.print(f"{len(found)} firmware versions")


def _pick(artifact: Artifact, delta: bool) -> SignedManifest:
    if not delta:
        return artifact.manifest
    if artifact.delta_manifest is None:
        raise NotFoundError(
            f"{artifact.device_class} firmware {artifact.version} was added without a delta; "
            "drop --delta for its full image"
        )
    return artifact.delta_manifest


Delta = Annotated[bool, typer.Option("--delta", help="The delta image's manifest instead.")]


@app.command("show")
def show(
    ctx: typer.Context,
    device_class: Annotated[str, typer.Argument(help="Device class.")],
    version: Annotated[str, typer.Argument(help="Firmware version.")],
    delta: Delta = False,
    signed: Annotated[
        bool, typer.Option("--signed", help="The signed envelope that travels with the image.")
    ] = False,
    out: Out = None,
) -> None:
    """Print a version's manifest (or, with --signed, the envelope devices receive)."""
    with platform(ctx) as p:
        chosen = _pick(p.artifact_catalog.get(device_class, version), delta)
    if signed:
        write_out(chosen.envelope().decode() + "\n", out)
    else:
        write_out(json.dumps(chosen.manifest().to_json(), indent=2) + "\n", out)


@app.command("get")
def get(
    ctx: typer.Context,
    device_class: Annotated[str, typer.Argument(help="Device class.")],
    version: Annotated[str, typer.Argument(help="Firmware version.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Write the image here.")],
    delta: Annotated[bool, typer.Option("--delta", help="The delta (patch) instead.")] = False,
) -> None:
    """Write a version's image (or its bsdiff4 patch) from the blob store to a file."""
    with platform(ctx) as p:
        artifact = p.artifact_catalog.get(device_class, version)
        _pick(artifact, delta)
        data = p.artifacts.patch(artifact) if delta else p.artifacts.image(artifact)
    out.write_bytes(data)
    console.print(f"wrote {out} ({len(data):,} bytes)")


@app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="The image file (the patch with --base).")],
    manifest: Annotated[Path, typer.Argument(help="The signed envelope (firmware show --signed).")],
    hw: Annotated[str, typer.Option("--hw", help="The device's hardware revision.")],
    security_version: Annotated[
        int, typer.Option("--security-version", "-s", help="The device's running security version.")
    ] = 0,
    at: Annotated[
        str | None, typer.Option("--at", help="Judge validity at this time (default now).")
    ] = None,
    base: Annotated[
        Path | None, typer.Option("--base", help="The base image a delta applies to.")
    ] = None,
    anchor: Annotated[
        list[Path] | None,
        typer.Option("--anchor", help="A trust anchor (PEM public key); default this platform's."),
    ] = None,
    trust: Annotated[
        list[str] | None,
        typer.Option("--trust", help="A trust anchor name the device holds (repeat)."),
    ] = None,
) -> None:
    """Judge an image and its manifest as a device would, and say why it would refuse."""
    for path in (image, manifest, *([base] if base else []), *(anchor or [])):
        if not path.is_file():
            raise NotFoundError(f"no file at {path}")
    signed = read_envelope(manifest.read_bytes())
    data = image.read_bytes()
    if base is not None:
        m = signed.manifest()
        if m.delta is None:
            raise FirmwareError(f"{manifest} is the manifest of a full image; drop --base")
        data = apply_patch(base.read_bytes(), data, m.delta.base_sha256, m.sha256)
    anchors = [_load_anchor(path) for path in anchor or []]
    with platform(ctx) as p:
        if not anchors:
            anchors = [p.firmware_public_key()]
        now = p.clock() if at is None else parse_instant(at, "--at")
    device = Device(hw=hw, security_version=security_version, anchors=anchors, trust=trust or [])
    accepted = verify(signed, device, now, data)
    console.print(
        f"accepted: {accepted.image} ({accepted.device_class} {accepted.version}, "
        f"security version {accepted.security_version}) for hw {hw}, valid "
        f"{_iso(accepted.not_before)} to {_iso(accepted.not_after)}"
    )


def _load_anchor(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except ValueError:
        raise FirmwareError(f"{path} is not a PEM public key (see firmware key-export)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise FirmwareError(f"{path} is not an EC P-256 public key")
    return key
