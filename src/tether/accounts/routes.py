"""HTTP routes for accounts and pairing, included by ``tether.service.app``.

- ``POST /v1/accounts`` (operator token) ``{"tenant"}`` → ``{"account", "tenant", "token"}``.
- ``POST /v1/pairing/challenges`` (account token) ``{"device"}`` →
  ``{"challenge", "expires_at"}`` (contract section 9; ``expires_at`` in seconds
  since the Unix epoch, like every time in this API).
- ``GET /v1/accounts/me/devices`` (account token) → ``{"account", "devices": [{"serial",
  "since"}]}``: the devices the account owns now.

``account_dependency(platform)`` is the FastAPI dependency that turns
``Authorization: Bearer <account token>`` into an ``Account`` (401 otherwise);
gateway uploads use it too.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures,
# whose annotations name objects local to ``account_routes``.

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, Field

from tether.accounts.base import Account
from tether.errors import AuthenticationError

if TYPE_CHECKING:
    from tether.platform import Platform


class NewAccount(BaseModel):
    tenant: str = Field(min_length=1, max_length=64)


class ChallengeRequest(BaseModel):
    device: str = Field(min_length=1, max_length=64, description="the device's serial")


def account_dependency(platform: "Platform") -> Callable[..., Account]:
    """A FastAPI dependency: the account whose bearer token the request carries."""

    def current_account(authorization: Annotated[str | None, Header()] = None) -> Account:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("send Authorization: Bearer <account token>")
        return platform.accounts.authenticate(token.strip())

    return current_account


def account_routes(platform: "Platform", operator: Any) -> APIRouter:
    """The routes; ``operator`` is the app's operator-token dependency (``Depends(...)``)."""
    router = APIRouter()
    current = Annotated[Account, Depends(account_dependency(platform))]

    @router.post("/v1/accounts", dependencies=[operator])
    def create_account(body: NewAccount) -> dict[str, str]:
        now = platform.clock()
        account = platform.accounts.create_account(body.tenant, now, actor="operator:http")
        token = platform.accounts.issue_token(account.id, now, actor="operator:http")
        return {"account": account.id, "tenant": account.tenant, "token": token}

    @router.post("/v1/pairing/challenges")
    def create_challenge(body: ChallengeRequest, account: current) -> dict[str, Any]:
        challenge = platform.accounts.create_challenge(account.id, body.device, platform.clock())
        return {"challenge": challenge.challenge_hex, "expires_at": challenge.expires_at}

    @router.get("/v1/accounts/me/devices")
    def my_devices(account: current) -> dict[str, Any]:
        owned = platform.accounts.bonds_of(account.id)
        return {
            "account": account.id,
            "devices": [{"serial": b.serial, "since": b.since} for b in owned],
        }

    return router
