"""Accounts, their bearer tokens, the bond set and pairing (contract sections 7 and 9)."""

from tether.accounts.base import (
    CHALLENGE_TTL_SECONDS,
    Account,
    AccountStore,
    AuditEntry,
    Bond,
    Challenge,
)
from tether.accounts.sql import SqlAccounts

__all__ = [
    "CHALLENGE_TTL_SECONDS",
    "Account",
    "AccountStore",
    "AuditEntry",
    "Bond",
    "Challenge",
    "SqlAccounts",
]
