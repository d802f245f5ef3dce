"""Adding firmware: an image file in, a stored blob and a signed manifest out.

``Artifacts.add`` checks what the operator typed (class, version, hardware,
security version, validity), streams the image into the blob store, hashes it on
the way, signs the manifest with the firmware-signing key, and records the
artifact in the catalog. With a delta base it also makes a bsdiff4 patch from
the base's stored image and signs a second manifest that names the base.

A security version lower than one already released for the class is allowed
(a maintenance line for older hardware can need it) but reported as a warning:
devices already running the higher one will refuse the image as a downgrade.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tether.errors import ConflictError, FirmwareError, NotFoundError
from tether.firmware.blobs import BlobStore, Progress
from tether.firmware.catalog import Artifact, ArtifactCatalog
from tether.firmware.delta import make_patch
from tether.firmware.manifest import (
    Delta,
    Manifest,
    check_hw,
    check_security_version,
    check_trust,
    check_version,
    sign_manifest,
)
from tether.keys import SigningKey

#: How long a manifest is valid when ``not_after`` is not given.
DEFAULT_VALIDITY = dt.timedelta(days=730)


@dataclass(frozen=True)
class NewImage:
    """What the operator says about an image."""

    path: Path
    device_class: str
    version: str
    hw: list[str]
    security_version: int
    not_before: int | None = None  # seconds since the epoch; None: now
    not_after: int | None = None  # None: not_before + DEFAULT_VALIDITY
    requires_trust: list[str] = field(default_factory=list)
    delta_from: str | None = None


@dataclass(frozen=True)
class Added:
    artifact: Artifact
    warnings: list[str]


def image_name(device_class: str, version: str, delta_from: str | None = None) -> str:
    """The manifest's ``image``: the file name the image travels under."""
    if delta_from is None:
        return f"{device_class}-{version}.bin"
    return f"{device_class}-{version}-from-{delta_from}.bsdiff4"


class Artifacts:
    """The catalog, the blob store and the signing key, used together."""

    def __init__(
        self,
        catalog: ArtifactCatalog,
        blobs: BlobStore,
        key: Callable[[], SigningKey],
        classes: list[str],
        clock: Callable[[], float],
    ) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self._key = key
        self.classes = classes
        self.clock = clock

    def _check(self, new: NewImage) -> tuple[list[str], list[str], int, int]:
        if new.device_class not in self.classes:
            raise NotFoundError(
                f"no device class {new.device_class!r}; known classes: "
                f"{', '.join(self.classes) or 'none'}"
            )
        check_version(new.version)
        if new.delta_from is not None:
            check_version(new.delta_from)
            if new.delta_from == new.version:
                raise FirmwareError(f"version {new.version} cannot be a delta from itself")
        hw = check_hw(new.hw)
        trust = check_trust(new.requires_trust)
        check_security_version(new.security_version)
        not_before = int(self.clock()) if new.not_before is None else new.not_before
        if new.not_after is None:
            not_after = not_before + int(DEFAULT_VALIDITY.total_seconds())
        else:
            not_after = new.not_after
        if not_after <= not_before:
            raise FirmwareError(
                f"the manifest would never be valid: not_after {_iso(not_after)} is not "
                f"after not_before {_iso(not_before)}"
            )
        if not new.path.exists():
            raise NotFoundError(f"no image file at {new.path}")
        if not new.path.is_file():
            raise FirmwareError(f"{new.path} is not a file; give the firmware image file")
        if new.path.stat().st_size == 0:
            raise FirmwareError(f"{new.path} is empty; a firmware image has at least one byte")
        return hw, trust, not_before, not_after

    def add(self, new: NewImage, on_progress: Progress | None = None) -> Added:
        """Store, sign and record the image; the typed error says what to fix."""
        hw, trust, not_before, not_after = self._check(new)
        if self.catalog.find(new.device_class, new.version) is not None:
            raise ConflictError(
                f"{new.device_class} firmware {new.version} is already in the catalog; "
                "a version is never replaced: give the new image a new version"
            )
        base = None
        if new.delta_from is not None:
            base = self.catalog.get(new.device_class, new.delta_from)
        key = self._key()  # before the upload: a missing key fails fast

        with new.path.open("rb") as fh:
            stored = self.blobs.put(fh, on_progress)
        if stored.size == 0:
            raise FirmwareError(f"{new.path} is empty; a firmware image has at least one byte")

        full = Manifest(
            image=image_name(new.device_class, new.version),
            device_class=new.device_class,
            version=new.version,
            security_version=new.security_version,
            hw=hw,
            size=stored.size,
            sha256=stored.sha256,
            not_before=not_before,
            not_after=not_after,
            requires_trust=trust,
        )
        artifact = Artifact(
            device_class=new.device_class,
            version=new.version,
            hw=hw,
            security_version=new.security_version,
            sha256=stored.sha256,
            size=stored.size,
            blob_key=stored.key,
            manifest=sign_manifest(full, key),
            created_at=self.clock(),
        )
        if base is not None:
            patch = make_patch(self.blobs.read(base.blob_key), self.blobs.read(stored.key))
            patch_blob = self.blobs.put(io.BytesIO(patch))
            delta = replace(
                full,
                image=image_name(new.device_class, new.version, base.version),
                delta_from=base.version,
                delta=Delta(
                    base_sha256=base.sha256, size=patch_blob.size, sha256=patch_blob.sha256
                ),
            )
            artifact = replace(
                artifact,
                delta_from=base.version,
                delta_blob_key=patch_blob.key,
                delta_size=patch_blob.size,
                delta_manifest=sign_manifest(delta, key),
            )
        warnings = self._warnings(artifact)
        self.catalog.add(artifact)
        return Added(artifact, warnings)

    def _warnings(self, artifact: Artifact) -> list[str]:
        higher = [
            a
            for a in self.catalog.list(artifact.device_class)
            if a.security_version > artifact.security_version
        ]
        if not higher:
            return []
        named = ", ".join(f"{a.version} ({a.security_version})" for a in higher)
        return [
            f"security version {artifact.security_version} is lower than that of "
            f"{artifact.device_class} {named}: devices already running a higher security "
            "version will refuse this image as a downgrade"
        ]

    def image(self, artifact: Artifact) -> bytes:
        return self.blobs.read(artifact.blob_key)

    def patch(self, artifact: Artifact) -> bytes:
        if artifact.delta_blob_key is None:
            raise NotFoundError(
                f"{artifact.device_class} firmware {artifact.version} has no delta image"
            )
        return self.blobs.read(artifact.delta_blob_key)


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")
