"""The FastAPI application.

Routes (all JSON unless noted):

- ``GET /healthz``: liveness and the engines in use; no credentials.
- ``GET /v1/tenants/{tenant}/ca-chain``: the tenant's trusted CA bundle (PEM); public.
- ``POST /v1/certificates/renew``: a device renews with a CSR signed by its current key.
- Operator routes, ``Authorization: Bearer <operator token>``:
  ``POST /v1/certificates/enroll``, ``GET /v1/certificates/expiring``,
  ``GET /v1/devices/{serial}``, ``POST /v1/devices/{serial}/revoke``.
- Accounts and pairing (``tether.accounts.routes``): ``POST /v1/accounts`` (operator),
  ``POST /v1/pairing/challenges`` and ``GET /v1/accounts/me/devices`` (account token).

Errors keep one shape: ``{"error": "<kind>", "detail": "<what to do>"}``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from tether import __version__
from tether.accounts.routes import account_routes
from tether.doors.firmware import firmware_router
from tether.doors.https import records_router
from tether.errors import (
    AuthenticationError,
    ConflictError,
    CSRRejectedError,
    IdentityError,
    NotFoundError,
    PermissionDeniedError,
    SettingsError,
    TetherError,
)
from tether.identity.ca import to_pem
from tether.platform import Platform
from tether.service.auth import admin_token
from tether.service.reads import read_routes
from tether.timeparse import parse_duration

_STATUS: list[tuple[type[TetherError], int, str]] = [
    (AuthenticationError, 401, "unauthorized"),
    (PermissionDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (CSRRejectedError, 422, "csr_rejected"),
    (IdentityError, 422, "invalid"),
    (SettingsError, 400, "malformed"),
]


class EnrollRequest(BaseModel):
    csr: str = Field(description="PEM certificate signing request with CN = serial")
    tenant: str
    device_class: str = Field(alias="class")
    hw: str


class RenewRequest(BaseModel):
    csr: str
    proof: str | None = Field(
        default=None,
        description="base64 r||s over SHA-256 of the CSR's DER, by the current key; "
        "needed only for a new key",
    )


class RevokeRequest(BaseModel):
    reason: str = "revoked by operator"


def create_app(platform: Platform) -> FastAPI:
    app = FastAPI(title="tether", version=__version__)
    token = admin_token(platform.settings)

    def operator(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            raise _Unauthorized()

    Operator = Depends(operator)
    app.include_router(read_routes(platform, operator))

    @app.exception_handler(TetherError)
    async def _tether_error(_request: Request, exc: TetherError) -> JSONResponse:
        for kind, status, name in _STATUS:
            if isinstance(exc, kind):
                return JSONResponse({"error": name, "detail": str(exc)}, status_code=status)
        return JSONResponse({"error": "internal", "detail": str(exc)}, status_code=500)

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(_request: Request, _exc: _Unauthorized) -> JSONResponse:
        return JSONResponse(
            {"error": "unauthorized", "detail": "send Authorization: Bearer <operator token>"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(RequestValidationError)
    async def _malformed(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"error": "malformed", "detail": problems}, status_code=400)

    app.include_router(records_router(platform))
    app.include_router(firmware_router(platform))

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "devices": platform.registry.count_devices(),
            "tenants": [t.name for t in platform.registry.list_tenants()],
        }

    @app.get("/v1/tenants/{tenant}/ca-chain", response_class=PlainTextResponse)
    def ca_chain(tenant: str) -> str:
        return platform.authority.chain_pem(tenant)

    @app.post("/v1/certificates/enroll", dependencies=[Operator])
    def enroll(body: EnrollRequest) -> dict[str, str]:
        cert = platform.provisioner.enroll(
            body.csr.encode(), body.tenant, body.device_class, body.hw
        )
        return {"certificate": to_pem(cert), "chain": platform.authority.chain_pem(body.tenant)}

    @app.post("/v1/certificates/renew")
    def renew(body: RenewRequest) -> dict[str, str]:
        proof = None
        if body.proof is not None:
            try:
                proof = base64.b64decode(body.proof, validate=True)
            except binascii.Error:
                raise CSRRejectedError("proof is not valid base64") from None
        cert = platform.renew(body.csr.encode(), proof)
        return {"certificate": to_pem(cert)}

    @app.get("/v1/certificates/expiring", dependencies=[Operator])
    def expiring(within: str = "30d") -> dict[str, Any]:
        horizon = platform.clock() + parse_duration(within)
        return {
            "certificates": [
                {"serial": c.serial, "fingerprint": c.fingerprint, "not_after": c.not_after}
                for c in platform.registry.expiring(horizon)
            ]
        }

    @app.get("/v1/devices/{serial}", dependencies=[Operator])
    def device(serial: str) -> dict[str, Any]:
        return asdict(platform.registry.get_device(serial))

    @app.post("/v1/devices/{serial}/revoke", dependencies=[Operator])
    def revoke(serial: str, body: RevokeRequest | None = None) -> dict[str, Any]:
        reason = body.reason if body else RevokeRequest().reason
        return asdict(platform.revoke(serial, reason))

    app.include_router(account_routes(platform, Operator))
    return app


class _Unauthorized(Exception):
    pass
