"""The accounts port: pseudonymous accounts, their bearer tokens, bonds and pairing.

An account is a random id and a tenant, nothing else: no name, no email, no
personal data (those belong to the vault, tier 3). An app holds a bearer token
for it; tether keeps only the token's SHA-256.

A **bond** says which account currently owns a device; a device has at most one
current owner. Gateway uploads (contract section 7) are accepted only from the
owner. Ownership moves only through **pairing** (contract section 9):

1. the account asks for a challenge for a device (14 random bytes, 28 hex
   characters, valid ten minutes, usable once, bound to the account and the device);
2. the device, on a button hold, signs a bond record carrying the challenge;
3. when the gate has verified that record's signature and it arrived through the
   same account's upload, ``complete_pairing`` moves the bond.

An operator may make a device's first bond (factory or shop assignment) and, with
``force`` and a reason, replace one; every change is audited.

Times are seconds since the Unix epoch (floats), passed in by the caller.
"""

from __future__ import annotations

import hashlib
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass

CHALLENGE_BYTES = 14
CHALLENGE_TTL_SECONDS = 600.0
ACCOUNT_PREFIX = "acc_"
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_ID_LENGTH = 16  # 80 random bits
_HEX = frozenset("0123456789abcdef")

# Audit actions.
ACCOUNT_CREATED = "account.created"
TOKEN_ISSUED = "token.issued"
TOKEN_REVOKED = "token.revoked"
CHALLENGE_ISSUED = "pairing.challenge"
PAIRING_COMPLETED = "pairing.completed"
PAIRING_REFUSED = "pairing.refused"
BOND_ASSIGNED = "bond.assigned"
BOND_REPLACED = "bond.replaced"

# How a bond was made, stored with it.
VIA_OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    tenant: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Bond:
    serial: str
    account_id: str
    since: float
    ended_at: float | None = None

    @property
    def current(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True, slots=True)
class Challenge:
    challenge_hex: str
    serial: str
    account_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    actor: str
    action: str
    subject: str
    detail: str


def new_account_id() -> str:
    """``acc_`` and 16 random Crockford base32 characters: pseudonymous, unguessable."""
    return ACCOUNT_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def new_token() -> str:
    """A bearer token: 32 random bytes, URL-safe base64."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What is stored for a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_id(token_hash: str) -> str:
    """A short, non-secret name for a token in the audit log."""
    return f"tok_{token_hash[:12]}"


def new_challenge() -> str:
    """14 random bytes as 28 lower-case hex characters (contract section 9)."""
    return secrets.token_hex(CHALLENGE_BYTES)


def normalise_challenge(text: str) -> str | None:
    """The challenge in canonical form, or None when it is not 28 hex characters."""
    lowered = text.strip().lower()
    if len(lowered) != 2 * CHALLENGE_BYTES or not _HEX.issuperset(lowered):
        return None
    return lowered


class AccountStore(ABC):
    """Accounts, tokens, bonds, pairing challenges and their audit log."""

    # accounts
    @abstractmethod
    def create_account(self, tenant: str, now: float, actor: str = "operator") -> Account:
        """A new account in ``tenant`` (NotFoundError if the tenant is unknown)."""

    @abstractmethod
    def get_account(self, account_id: str) -> Account:
        """The account; NotFoundError if unknown."""

    # tokens
    @abstractmethod
    def issue_token(self, account_id: str, now: float, actor: str = "operator") -> str:
        """A new bearer token for the account; only its hash is kept, so show it once."""

    @abstractmethod
    def authenticate(self, token: str) -> Account:
        """The account a token belongs to; AuthenticationError if unknown or revoked."""

    @abstractmethod
    def revoke_token(self, token: str, now: float, actor: str = "operator") -> None:
        """Revoke a token; AuthenticationError if it is unknown or already revoked."""

    # bonds
    @abstractmethod
    def owner(self, serial: str) -> str | None:
        """The account that currently owns the device, or None."""

    @abstractmethod
    def is_bonded(self, account_id: str, serial: str) -> bool:
        """Whether the account currently owns the device.

        On the ingestion hot path: answered from memory. A change made in this
        process is seen at once; one made by another process within the store's
        poll interval.
        """

    @abstractmethod
    def bonds_of(self, account_id: str) -> list[Bond]:
        """The account's current bonds, by serial."""

    @abstractmethod
    def bond_history(self, serial: str) -> list[Bond]:
        """Every bond the device has had, oldest first."""

    @abstractmethod
    def bond(
        self,
        serial: str,
        account_id: str,
        now: float,
        actor: str,
        reason: str,
        force: bool = False,
    ) -> Bond:
        """An operator's assignment of a device to an account (factory, shop, support).

        Refused with ConflictError when the device already has an owner, unless
        ``force`` is set and ``reason`` says why; refused with PermissionDeniedError
        when the device and the account belong to different tenants. Audited.
        """

    # pairing
    @abstractmethod
    def create_challenge(self, account_id: str, serial: str, now: float) -> Challenge:
        """A pairing challenge for the account and device, valid ten minutes, usable once.

        NotFoundError for an unknown account or device, PermissionDeniedError for
        a device of another tenant, ConflictError for a revoked device.
        """

    @abstractmethod
    def complete_pairing(
        self, serial: str, challenge_hex: str, account_id: str, now: float
    ) -> bool:
        """Move the device to the account, answering a verified, signed bond record.

        Call only after the record's signature has been verified against the
        device's key and it arrived through ``account_id``'s upload; ``now`` is
        the record's arrival time. True when the challenge was issued to this
        account for this device, is unexpired and unused: the challenge is
        consumed, the previous owner's bond ends, the account becomes the owner
        and the change is audited. True also, changing nothing, when the same
        record comes again and the bond it made still stands. False on any other
        mismatch (the gate answers ``not_bonded``); the refusal is audited.
        """

    # audit
    @abstractmethod
    def audit(self, subject: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Audit entries, newest first, optionally about one serial or account."""

    def refresh(self) -> None:  # noqa: B027 - optional hook
        """Look now, not at the next poll, for bond changes made by other processes."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
