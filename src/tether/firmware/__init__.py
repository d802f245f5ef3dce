"""Firmware artifacts: the blob store, signed manifests, deltas and the catalog.

Rollouts (cohorts, stages, halt rules) and delivery build on this package.
"""

from tether.firmware.artifacts import Added, Artifacts, NewImage
from tether.firmware.blobs import BlobInfo, BlobStore, DirectoryBlobStore, open_blob_store
from tether.firmware.catalog import Artifact, ArtifactCatalog
from tether.firmware.manifest import Manifest, SignedManifest, read_envelope, sign_manifest
from tether.firmware.verify import Device, Refusal, judge, verify

__all__ = [
    "Added",
    "Artifact",
    "ArtifactCatalog",
    "Artifacts",
    "BlobInfo",
    "BlobStore",
    "Device",
    "DirectoryBlobStore",
    "Manifest",
    "NewImage",
    "Refusal",
    "SignedManifest",
    "judge",
    "open_blob_store",
    "read_envelope",
    "sign_manifest",
    "verify",
]
