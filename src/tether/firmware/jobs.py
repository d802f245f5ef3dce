"""An update job: what a device is told to install, on its commands topic or through its app.

    {"type": "ota", "job": "<32 hex>", "rollout": "<id>",
     "manifest": <the signed manifest envelope>, "url": "https://.../image[?delta_from=]",
     "size": <bytes to fetch>, "time": <the platform's signed time, nonce = job>}

The manifest is the full image's, or the delta's when the device runs the delta's
base. The signed time answers the job id as its nonce, so a device judges the
manifest's validity window at the platform's time of the job without asking for
it; a device that can reach the HTTPS door may ask ``/v1/time`` with a nonce of
its own instead. A device trusts nothing in a job until the manifest's signature
verifies: the job only says where to look.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tether.errors import ManifestRefusedError
from tether.firmware.catalog import Artifact
from tether.firmware.manifest import SignedManifest, read_envelope
from tether.firmware.timestamp import NONCE, read_time, sign_time
from tether.firmware.verify import Refusal
from tether.keys.base import SigningKey


@dataclass(frozen=True)
class Job:
    job: str
    rollout: str
    manifest: SignedManifest
    url: str
    size: int
    time: int  # the platform's time of the job, checked against the trust anchors


def new_job_id() -> str:
    return secrets.token_hex(16)


def make_job(
    artifact: Artifact,
    rollout: str,
    base_url: str,
    key: SigningKey,
    now: float,
    running: str | None = None,
    job: str | None = None,
) -> dict[str, Any]:
    """The job for a device running version ``running``: a delta when it runs the base."""
    job = job or new_job_id()
    path = f"{base_url.rstrip('/')}/v1/firmware/{artifact.device_class}/{artifact.version}/image"
    delta = (
        artifact.delta_manifest is not None
        and artifact.delta_from is not None
        and artifact.delta_from == running
    )
    if delta:
        assert artifact.delta_manifest is not None and artifact.delta_size is not None
        signed, size, url = (
            artifact.delta_manifest,
            artifact.delta_size,
            f"{path}?delta_from={artifact.delta_from}",
        )
    else:
        signed, size, url = artifact.manifest, artifact.size, path
    return {
        "type": "ota",
        "job": job,
        "rollout": rollout,
        "manifest": json.loads(signed.envelope()),
        "url": url,
        "size": size,
        "time": json.loads(sign_time(key, now, job)),
    }


def _refused(detail: str) -> ManifestRefusedError:
    return ManifestRefusedError(Refusal.MALFORMED.value, detail)


def read_job(message: dict[str, Any], anchors: Iterable[ec.EllipticCurvePublicKey]) -> Job:
    """A job as a device reads it; ManifestRefusedError when it is not one or its time is bad.

    The manifest's own signature is the device's next check (``tether.firmware.verify``).
    """
    if message.get("type") != "ota":
        raise _refused("not an update job: its type is not 'ota'")
    job, rollout, url, size = (message.get(k) for k in ("job", "rollout", "url", "size"))
    if not isinstance(job, str) or not NONCE.fullmatch(job):
        raise _refused("an update job's id is 16 to 64 lower-case hex digits")
    if not isinstance(rollout, str) or not isinstance(url, str) or not url.startswith("https://"):
        raise _refused("an update job names its rollout and an https:// URL")
    if type(size) is not int or size < 0:
        raise _refused("an update job's size is a whole number of bytes")
    manifest = message.get("manifest")
    statement = message.get("time")
    if not isinstance(manifest, dict) or not isinstance(statement, dict):
        raise _refused("an update job carries the manifest envelope and the signed time")
    signed = read_envelope(json.dumps(manifest).encode())
    at = read_time(json.dumps(statement).encode(), job, anchors)
    return Job(job, rollout, signed, url, size, at)
