"""Firmware delivery over HTTPS: signed manifests, images with byte ranges, signed time.

- ``GET /v1/ota/jobs``: a phone app's pending update jobs, for its bonded devices
  (``tether.rollouts.delivery``);
- ``GET /v1/time?nonce=HEX``: the platform's time for that nonce, signed with the
  firmware-signing key (``tether.firmware.timestamp``);
- ``GET /v1/firmware/{class}/{version}/manifest[?delta_from=BASE]``: the signed
  manifest envelope of the full image, or of the delta from ``BASE``;
- ``GET /v1/firmware/{class}/{version}/image[?delta_from=BASE]``: the image (or
  patch) bytes. ``Range: bytes=a-b`` (also ``a-`` and ``-n``) answers 206 with
  ``Content-Range``, so a download cut by a dropped link resumes where it stopped;
  a range outside the image answers 416.

Who may fetch: a device with its own client certificate, for its class and
hardware revision; a phone app with its account's token, for the class and
revision of a device bonded to that account. Anyone else gets 401, or 403 for an
image none of their devices may run.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from tether.doors.https import credential, error
from tether.errors import NotFoundError
from tether.firmware.catalog import Artifact
from tether.firmware.manifest import SignedManifest
from tether.firmware.timestamp import NONCE, sign_time
from tether.gate.submission import DIRECT
from tether.platform import Platform
from tether.rollouts.delivery import Delivery

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` of one ``Range: bytes=`` header over ``size`` bytes (stop exclusive).

    None when it cannot be served: malformed, outside the image, or several ranges.
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # the last n bytes
        n = int(last)
        return (max(0, size - n), size) if n > 0 and size > 0 else None
    start = int(first)
    stop = size if last == "" else min(int(last) + 1, size)
    return (start, stop) if start < stop else None


def firmware_router(platform: Platform) -> APIRouter:
    router = APIRouter()
    delivery = Delivery(platform)

    def allowed(request: Request, artifact: Artifact) -> JSONResponse | None:
        """None when the caller may fetch ``artifact``, else the answer to send."""
        who = credential(platform, request)
        if isinstance(who, JSONResponse):
            return who
        door, name, account = who
        if door == DIRECT:
            serials = [name]
        else:
            assert account is not None
            serials = [bond.serial for bond in platform.accounts.bonds_of(account)]
        for serial in serials:
            device = platform.registry.get_device(serial)
            if device.device_class == artifact.device_class and device.hw in artifact.hw:
                return None
        return error(
            403,
            "forbidden",
            f"{artifact.device_class} {artifact.version} is for hardware "
            f"{', '.join(artifact.hw)}; no device of yours runs it",
        )

    def chosen(
        device_class: str, version: str, delta_from: str | None
    ) -> tuple[Artifact, SignedManifest, str, int]:
        artifact = platform.artifact_catalog.get(device_class, version)
        if delta_from is None:
            return artifact, artifact.manifest, artifact.blob_key, artifact.size
        if artifact.delta_from != delta_from or artifact.delta_manifest is None:
            raise NotFoundError(
                f"{device_class} {version} has no delta from {delta_from}"
                + (f"; it has one from {artifact.delta_from}" if artifact.delta_from else "")
            )
        assert artifact.delta_blob_key is not None and artifact.delta_size is not None
        return artifact, artifact.delta_manifest, artifact.delta_blob_key, artifact.delta_size

    @router.get("/v1/ota/jobs", response_model=None)
    def ota_jobs(request: Request) -> Response:
        """A phone app's pending update jobs: its bonded devices notified in a running rollout."""
        who = credential(platform, request)
        if isinstance(who, JSONResponse):
            return who
        door, _, account = who
        if door == DIRECT or account is None:
            return error(
                403, "forbidden", "update jobs reach a device on its commands topic, not here"
            )
        return JSONResponse({"jobs": delivery.for_account(account)})

    @router.get("/v1/time", response_model=None)
    def signed_time(request: Request, nonce: str = Query(...)) -> Response:
        who = credential(platform, request)
        if isinstance(who, JSONResponse):
            return who
        if not NONCE.fullmatch(nonce):
            return error(400, "malformed", "nonce: 16 to 64 lower-case hex digits, fresh each time")
        statement = sign_time(platform.firmware_key(), platform.clock(), nonce)
        return Response(statement, media_type="application/json")

    @router.get("/v1/firmware/{device_class}/{version}/manifest", response_model=None)
    def manifest(
        request: Request, device_class: str, version: str, delta_from: str | None = None
    ) -> Response:
        artifact, signed, _, _ = chosen(device_class, version, delta_from)
        refused = allowed(request, artifact)
        if refused is not None:
            return refused
        return Response(signed.envelope(), media_type="application/json")

    @router.get("/v1/firmware/{device_class}/{version}/image", response_model=None)
    def image(
        request: Request, device_class: str, version: str, delta_from: str | None = None
    ) -> Response:
        artifact, _, key, size = chosen(device_class, version, delta_from)
        refused = allowed(request, artifact)
        if refused is not None:
            return refused
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store"}
        asked = request.headers.get("range")
        if asked is None:
            headers["Content-Length"] = str(size)
            return StreamingResponse(
                platform.blobs.iter_range(key, 0, None),
                media_type="application/octet-stream",
                headers=headers,
            )
        span = parse_range(asked, size)
        if span is None:
            return error(
                416,
                "range_not_satisfiable",
                f"the image is {size} bytes; ask one range inside it, e.g. bytes=0-1023",
                {"Content-Range": f"bytes */{size}"},
            )
        start, stop = span
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        headers["Content-Length"] = str(stop - start)
        return StreamingResponse(
            platform.blobs.iter_range(key, start, stop),
            status_code=206,
            media_type="application/octet-stream",
            headers=headers,
        )

    return router
