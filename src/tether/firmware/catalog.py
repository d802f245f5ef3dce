"""The artifact catalog: every firmware version tether holds, in the entity store.

One row per (class, version). A row names the full image's blob and keeps its
signed manifest; when the version was added as a delta from a base, the row also
names the patch's blob and keeps the delta's own signed manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa

from tether.errors import ConflictError, NotFoundError
from tether.firmware.manifest import SignedManifest
from tether.registry.sql import SqlDatabase

metadata = sa.MetaData()
firmware_artifacts = sa.Table(
    "firmware_artifacts",
    metadata,
    sa.Column("device_class", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("hw", sa.Text, nullable=False),  # JSON list
    sa.Column("security_version", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("blob_key", sa.String(128), nullable=False),
    sa.Column("manifest", sa.LargeBinary, nullable=False),
    sa.Column("signature", sa.LargeBinary, nullable=False),
    sa.Column("delta_from", sa.String(32), nullable=True),
    sa.Column("delta_blob_key", sa.String(128), nullable=True),
    sa.Column("delta_size", sa.BigInteger, nullable=True),
    sa.Column("delta_manifest", sa.LargeBinary, nullable=True),
    sa.Column("delta_signature", sa.LargeBinary, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class Artifact:
    device_class: str
    version: str
    hw: list[str]
    security_version: int
    sha256: str
    size: int
    blob_key: str
    manifest: SignedManifest
    created_at: float
    delta_from: str | None = None
    delta_blob_key: str | None = None
    delta_size: int | None = None
    delta_manifest: SignedManifest | None = None


def _row(artifact: Artifact) -> dict[str, object]:
    delta = artifact.delta_manifest
    return {
        "device_class": artifact.device_class,
        "version": artifact.version,
        "hw": json.dumps(artifact.hw),
        "security_version": artifact.security_version,
        "sha256": artifact.sha256,
        "size": artifact.size,
        "blob_key": artifact.blob_key,
        "manifest": artifact.manifest.body,
        "signature": artifact.manifest.signature,
        "delta_from": artifact.delta_from,
        "delta_blob_key": artifact.delta_blob_key,
        "delta_size": artifact.delta_size,
        "delta_manifest": None if delta is None else delta.body,
        "delta_signature": None if delta is None else delta.signature,
        "created_at": artifact.created_at,
    }


def _artifact(row: sa.Row[tuple[object, ...]]) -> Artifact:
    m = row._mapping
    delta = None
    if m["delta_manifest"] is not None:
        delta = SignedManifest(bytes(m["delta_manifest"]), bytes(m["delta_signature"]))
    return Artifact(
        device_class=m["device_class"],
        version=m["version"],
        hw=json.loads(m["hw"]),
        security_version=int(m["security_version"]),
        sha256=m["sha256"],
        size=int(m["size"]),
        blob_key=m["blob_key"],
        manifest=SignedManifest(bytes(m["manifest"]), bytes(m["signature"])),
        created_at=float(m["created_at"]),
        delta_from=m["delta_from"],
        delta_blob_key=m["delta_blob_key"],
        delta_size=None if m["delta_size"] is None else int(m["delta_size"]),
        delta_manifest=delta,
    )


class ArtifactCatalog(SqlDatabase):
    """Firmware artifacts in the entity database."""

    def __init__(self, url: str) -> None:
        super().__init__(url, metadata)

    def add(self, artifact: Artifact) -> None:
        """Record ``artifact``; ConflictError if its class already has that version."""
        try:
            with self._tx() as conn:
                conn.execute(firmware_artifacts.insert().values(**_row(artifact)))
        except ConflictError:
            raise ConflictError(
                f"{artifact.device_class} firmware {artifact.version} is already in the "
                "catalog; a version is never replaced: give the new image a new version"
            ) from None

    def find(self, device_class: str, version: str) -> Artifact | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(firmware_artifacts).where(
                    firmware_artifacts.c.device_class == device_class,
                    firmware_artifacts.c.version == version,
                )
            ).first()
        return None if row is None else _artifact(row)

    def get(self, device_class: str, version: str) -> Artifact:
        found = self.find(device_class, version)
        if found is None:
            have = [a.version for a in self.list(device_class)]
            known = ", ".join(have) if have else "none yet"
            raise NotFoundError(
                f"no {device_class} firmware {version} in the catalog "
                f"(versions of {device_class}: {known}); see: tether firmware list"
            )
        return found

    def list(self, device_class: str | None = None) -> list[Artifact]:
        query = sa.select(firmware_artifacts).order_by(
            firmware_artifacts.c.device_class, firmware_artifacts.c.created_at
        )
        if device_class is not None:
            query = query.where(firmware_artifacts.c.device_class == device_class)
        with self._read() as conn:
            return [_artifact(r) for r in conn.execute(query).all()]
