"""The HTTPS front door: ``POST /v1/records`` (contract section 7).

Gateway mode: ``Authorization: Bearer <account token>``; every record's device
must be bonded to that account (the gate checks). Direct mode: the device's own
TLS client certificate (verified by the shared certificate verifier); it may
upload only its own records. Each request is checked whole first (credentials
401, size 413, shape 400, throttle 429); then each record is judged on its own.
The request's records are durable in the raw stream before they are judged, and
every ``accepted`` and ``duplicate`` one is durable in the event log before the
200 goes out.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tether.contract.codes import ACCEPTED, MALFORMED, REJECTED, SIGNATURE_BYTES
from tether.contract.values import Serial
from tether.errors import (
    AuthenticationError,
    CertificateRejectedError,
    InvalidSerialError,
)
from tether.gate.pipeline import Outcome
from tether.gate.submission import DIRECT, GATEWAY, Submission
from tether.platform import Platform
from tether.projections.state import agreed_capabilities

MAX_RECORDS = 500
MAX_BODY_BYTES = 1024 * 1024
BACKLOG_RETRY_SECONDS = 5  # Retry-After while the stores catch up
# The base64 of a record at its 16 KiB limit, with room: anything longer is rejected unread.
_MAX_B64 = 4 * (16 * 1024 + SIGNATURE_BYTES) // 3 + 8


class TokenBucket:
    """Requests per credential: ``rate`` a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, who: str, now: float) -> float:
        """0 when allowed, else the seconds to wait."""
        with self._lock:
            tokens, at = self._state.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._state[who] = (tokens - 1, now)
                return 0.0
            self._state[who] = (tokens, now)
            return (1 - tokens) / self.rate


def error(
    status: int, kind: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status, headers=headers)


def client_certificate(request: Request) -> bytes | None:
    """The DER client certificate of a direct-mode TLS connection, if any."""
    tls = request.scope.get("extensions", {}).get("tls", {})
    der = tls.get("client_cert_der")
    return der if isinstance(der, bytes) else None


def records_router(platform: Platform, bucket: TokenBucket | None = None) -> APIRouter:
    router = APIRouter()
    throttle = bucket or TokenBucket(
        platform.settings.ingest.requests_per_second, platform.settings.ingest.burst
    )
    backlog = platform.backlog

    @router.post("/v1/records", response_model=None)
    async def records(request: Request) -> JSONResponse:
        sender = credential(platform, request)
        if isinstance(sender, JSONResponse):
            return sender
        door, who, account = sender
        wait = throttle.take(who, time.monotonic())
        if wait > 0:
            return error(
                429,
                "rate_limited",
                "too many requests; retry later",
                {"Retry-After": str(max(1, round(wait)))},
            )
        if backlog.over():
            return error(
                429,
                "rate_limited",
                f"the platform is {backlog.lag()} events behind in storing what it accepted; "
                "keep the records and retry later",
                {"Retry-After": str(BACKLOG_RETRY_SECONDS)},
            )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return error(413, "too_large", "a request is at most 1 MiB")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return error(413, "too_large", "a request is at most 1 MiB")
        items = _parse(body)
        if isinstance(items, JSONResponse):
            return items
        if len(items) > MAX_RECORDS:
            return error(413, "too_large", f"a request carries at most {MAX_RECORDS} records")
        arrival = int(platform.clock() * 1000)
        return await _judge(platform, items, door, who, account, arrival)

    return router


def credential(platform: Platform, request: Request) -> tuple[str, str, str | None] | JSONResponse:
    """(door, who, account) for the request, or the 401 to send."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            account = platform.accounts.authenticate(token.strip())
        except AuthenticationError as exc:
            return error(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})
        return GATEWAY, account.id, account.id
    der = client_certificate(request)
    if der is not None:
        try:
            device = platform.verifier.verify(der)
        except CertificateRejectedError as exc:
            return error(401, exc.code, exc.detail)
        return DIRECT, device.serial, None
    return error(
        401,
        "unauthorized",
        "send Authorization: Bearer <account token> or connect "
        "with the device's client certificate",
        {"WWW-Authenticate": "Bearer"},
    )


def _parse(body: bytes) -> list[Any] | JSONResponse:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return error(400, "malformed", f"the request body is not JSON: {exc}")
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        return error(400, "malformed", 'the body must be {"records": [...]}')
    return list(doc["records"])


async def _judge(
    platform: Platform, items: list[Any], door: str, who: str, account: str | None, arrival: int
) -> JSONResponse:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(_judge_sync, platform, items, door, who, account, arrival)


def _judge_sync(
    platform: Platform, items: list[Any], door: str, who: str, account: str | None, arrival: int
) -> JSONResponse:
    results: list[Outcome | None] = [None] * len(items)
    subs: list[tuple[int, Submission]] = []
    early: list[tuple[Submission, Outcome]] = []
    for i, item in enumerate(items):
        serial, data, problem = _item(item)
        sub = Submission(serial or "", data, door, arrival, account)
        if problem is None and door == DIRECT and serial != who:
            problem = ("device_mismatch", f"this certificate is {who}'s, not {serial}'s")
        if problem is not None:
            outcome = Outcome(serial or "", None, REJECTED, *problem)
            results[i] = outcome
            early.append((sub, outcome))
        else:
            subs.append((i, sub))
    platform.stream("raw").append([s.entry() for _, s in subs])
    platform.gate.reject_at_door(early)
    for (i, _), outcome in zip(subs, platform.gate.process([s for _, s in subs]), strict=True):
        results[i] = outcome
    judged = [r for r in results if r is not None]
    return JSONResponse(
        {"results": [o.as_result() for o in judged], "use": capabilities_answer(platform, judged)}
    )


def capabilities_answer(platform: Platform, judged: list[Outcome]) -> dict[str, list[str]]:
    """Capabilities in use per device, counting hellos accepted in this very request."""
    use = platform.capabilities_in_use({o.serial for o in judged if o.outcome != REJECTED})
    for o in judged:
        if o.outcome == ACCEPTED and o.event is not None and o.event.type == "hello":
            runtime = platform.catalog.get(o.event.device_class)
            use[o.serial] = agreed_capabilities(runtime, o.event.body.get("capabilities", []))
    return use


def _item(item: Any) -> tuple[str | None, bytes, tuple[str, str] | None]:
    """(serial, record bytes, problem) for one entry of the request."""
    if not isinstance(item, dict):
        return None, b"", (MALFORMED, 'each record is {"device", "data"}')
    serial, data = item.get("device"), item.get("data")
    try:
        serial = Serial(serial).value if isinstance(serial, str) else None
    except InvalidSerialError as exc:
        return None, b"", (MALFORMED, str(exc))
    if serial is None:
        return None, b"", (MALFORMED, "device must be a serial")
    if not isinstance(data, str) or len(data) > _MAX_B64:
        too_long = isinstance(data, str)
        return (
            serial,
            b"",
            (
                "too_large" if too_long else MALFORMED,
                "a record is at most 16 KiB" if too_long else "data must be base64",
            ),
        )
    try:
        return serial, base64.b64decode(data, validate=True), None
    except (binascii.Error, ValueError):
        return serial, b"", (MALFORMED, "data is not valid base64")
