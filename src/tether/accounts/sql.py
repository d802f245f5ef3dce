"""Accounts, tokens, bonds and pairing on SQLAlchemy Core, in the entity database.

The tables sit on the registry's ``MetaData`` so that bonds and challenges can
point at ``devices`` and accounts at ``tenants``. A partial unique index holds
the rule "at most one current owner per device" in the database itself.

Every transaction that changes a bond starts by bumping the ``bonds`` row of the
registry's ``counters`` table. That write serialises bond changes (a row lock on
PostgreSQL, the write lock on SQLite, taken before anything is read) and gives
each change a generation number, stored on the bonds it touched, from which
other processes learn which serials to forget (see ``cache.py``).

Driver errors are translated here into tether's error tree.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tether.accounts.base import (
    ACCOUNT_CREATED,
    BOND_ASSIGNED,
    BOND_REPLACED,
    CHALLENGE_ISSUED,
    CHALLENGE_TTL_SECONDS,
    PAIRING_COMPLETED,
    PAIRING_REFUSED,
    TOKEN_ISSUED,
    TOKEN_REVOKED,
    VIA_OPERATOR,
    Account,
    AccountStore,
    AuditEntry,
    Bond,
    Challenge,
    hash_token,
    new_account_id,
    new_challenge,
    new_token,
    normalise_challenge,
    token_id,
)
from tether.accounts.cache import OwnerCache
from tether.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
)
from tether.registry.base import DEVICE_ACTIVE, DeviceRecord, DeviceRegistry
from tether.registry.sql import SqlDatabase, counters, insert, metadata

# Challenges are kept a while after they expire, so a late bond record is
# audited as "expired" rather than "unknown"; then they are purged.
CHALLENGE_KEEP_SECONDS = 7 * 24 * 3600.0
_GENERATION = "bonds"
ALREADY_USED = "challenge already used"

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(64), sa.ForeignKey("tenants.name"), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_accounts_tenant", "tenant"),
)

account_tokens = sa.Table(
    "account_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),  # SHA-256, hex; never the token
    sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    sa.Index("ix_account_tokens_account", "account_id"),
)

bonds = sa.Table(
    "bonds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("serial", sa.String(64), sa.ForeignKey("devices.serial"), nullable=False),
    sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("since", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
    # The challenge that made the bond, or "operator".
    sa.Column("via", sa.String(64), nullable=False),
    # The bond generation of the last change to this row.
    sa.Column("changed_gen", sa.Integer, nullable=False),
    sa.Index("ix_bonds_account", "account_id", "ended_at"),
    sa.Index("ix_bonds_serial", "serial", "id"),
    sa.Index("ix_bonds_changed_gen", "changed_gen"),
)
# At most one current owner per device, enforced by the database.
sa.Index(
    "ux_bonds_current",
    bonds.c.serial,
    unique=True,
    sqlite_where=bonds.c.ended_at.is_(None),
    postgresql_where=bonds.c.ended_at.is_(None),
)

pairing_challenges = sa.Table(
    "pairing_challenges",
    metadata,
    sa.Column("challenge_hex", sa.String(28), primary_key=True),
    sa.Column("serial", sa.String(64), sa.ForeignKey("devices.serial"), nullable=False),
    sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float, nullable=True),
    sa.Index("ix_pairing_challenges_account", "account_id", "expires_at"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(128), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_audit_log_subject", "subject", "id"),
)

_CURRENT_OWNER = sa.select(bonds.c.account_id).where(
    bonds.c.serial == sa.bindparam("serial"), bonds.c.ended_at.is_(None)
)


def _bond(row: Any) -> Bond:
    return Bond(row.serial, row.account_id, row.since, row.ended_at)


class SqlAccounts(SqlDatabase, AccountStore):
    """The accounts port in any database SQLAlchemy speaks (the entity store)."""

    def __init__(self, url: str, registry: DeviceRegistry, poll_seconds: float = 1.0) -> None:
        super().__init__(url, metadata)
        self.registry = registry
        self._ensure_generation()
        self._owners = OwnerCache(
            self._load_owner, self._bond_generation, self._changed_since, poll_seconds
        )

    # plumbing
    def _ensure_generation(self) -> None:
        with self._read() as conn:
            found = conn.execute(
                sa.select(counters.c.value).where(counters.c.name == _GENERATION)
            ).first()
        if found is None:
            with self._tx() as conn:  # another process may make it first: nothing to do then
                conn.execute(
                    insert(conn, counters)
                    .values(name=_GENERATION, value=0)
                    .on_conflict_do_nothing(index_elements=[counters.c.name])
                )

    @staticmethod
    def _bump(conn: Connection) -> int:
        """Take the bond lock and return the new generation; call first in a transaction."""
        conn.execute(
            counters.update()
            .where(counters.c.name == _GENERATION)
            .values(value=counters.c.value + 1)
        )
        return int(
            conn.execute(
                sa.select(counters.c.value).where(counters.c.name == _GENERATION)
            ).scalar_one()
        )

    @staticmethod
    def _audit(
        conn: Connection, at: float, actor: str, action: str, subject: str, detail: str
    ) -> None:
        conn.execute(
            audit_log.insert().values(
                at=at, actor=actor, action=action, subject=subject, detail=detail
            )
        )

    def _bond_generation(self) -> int:
        with self._read() as conn:
            value = conn.execute(
                sa.select(counters.c.value).where(counters.c.name == _GENERATION)
            ).scalar()
        return int(value or 0)

    def _changed_since(self, generation: int) -> list[str]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(bonds.c.serial).distinct().where(bonds.c.changed_gen > generation)
            ).all()
        return [r.serial for r in rows]

    def _load_owner(self, serial: str) -> str | None:
        with self._read() as conn:
            value = conn.execute(_CURRENT_OWNER, {"serial": serial}).scalar()
        return None if value is None else str(value)

    def _device_for(self, account: Account, serial: str) -> DeviceRecord:
        device = self.registry.find_device(serial)
        # Another tenant's device is answered exactly like a missing one: a tenant
        # learns nothing about serials outside it.
        if device is None or device.tenant != account.tenant:
            raise NotFoundError(f"no device with serial {serial!r} in tenant {account.tenant!r}")
        if device.status != DEVICE_ACTIVE:
            raise ConflictError(f"device {serial!r} is {device.status} and cannot be bonded")
        return device

    def refresh(self) -> None:
        """Look for bond changes made by other processes now, not at the next poll."""
        self._owners.refresh(force=True)

    # accounts
    def create_account(self, tenant: str, now: float, actor: str = "operator") -> Account:
        self.registry.get_tenant(tenant)
        account = Account(new_account_id(), tenant, now)
        with self._tx() as conn:
            conn.execute(accounts.insert().values(id=account.id, tenant=tenant, created_at=now))
            self._audit(conn, now, actor, ACCOUNT_CREATED, account.id, f"in tenant {tenant}")
        return account

    def get_account(self, account_id: str) -> Account:
        with self._read() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).first()
        if row is None:
            raise NotFoundError(
                f"no account {account_id!r}; create one with: tether accounts create --tenant T"
            )
        return Account(row.id, row.tenant, row.created_at)

    # tokens
    def issue_token(self, account_id: str, now: float, actor: str = "operator") -> str:
        self.get_account(account_id)
        token = new_token()
        digest = hash_token(token)
        with self._tx() as conn:
            conn.execute(
                account_tokens.insert().values(
                    token_hash=digest, account_id=account_id, created_at=now, revoked_at=None
                )
            )
            self._audit(conn, now, actor, TOKEN_ISSUED, account_id, token_id(digest))
        return token

    def authenticate(self, token: str) -> Account:
        if not token:
            raise AuthenticationError("send Authorization: Bearer <account token>")
        query = (
            sa.select(accounts, account_tokens.c.revoked_at)
            .join(account_tokens, account_tokens.c.account_id == accounts.c.id)
            .where(account_tokens.c.token_hash == hash_token(token))
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None or row.revoked_at is not None:
            raise AuthenticationError(
                "the account token is unknown or revoked; get a new one "
                "(operators: tether accounts token ACCOUNT)"
            )
        return Account(row.id, row.tenant, row.created_at)

    def revoke_token(self, token: str, now: float, actor: str = "operator") -> None:
        digest = hash_token(token)
        with self._tx() as conn:
            account_id = conn.execute(
                sa.select(account_tokens.c.account_id)
                .where(account_tokens.c.token_hash == digest, account_tokens.c.revoked_at.is_(None))
                .with_for_update()  # two revocations of one token: the second finds it revoked
            ).scalar()
            if account_id is None:
                raise AuthenticationError("that token is unknown or already revoked")
            conn.execute(
                account_tokens.update()
                .where(account_tokens.c.token_hash == digest)
                .values(revoked_at=now)
            )
            self._audit(conn, now, actor, TOKEN_REVOKED, str(account_id), token_id(digest))

    # bonds
    def owner(self, serial: str) -> str | None:
        return self._owners.owner(serial)

    def is_bonded(self, account_id: str, serial: str) -> bool:
        return self._owners.owner(serial) == account_id

    def bonds_of(self, account_id: str) -> list[Bond]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(bonds)
                .where(bonds.c.account_id == account_id, bonds.c.ended_at.is_(None))
                .order_by(bonds.c.serial)
            ).all()
        return [_bond(r) for r in rows]

    def bond_history(self, serial: str) -> list[Bond]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(bonds).where(bonds.c.serial == serial).order_by(bonds.c.id)
            ).all()
        return [_bond(r) for r in rows]

    def bond(
        self,
        serial: str,
        account_id: str,
        now: float,
        actor: str,
        reason: str,
        force: bool = False,
    ) -> Bond:
        account = self.get_account(account_id)
        self._device_for(account, serial)
        if force and not reason.strip():
            raise ConflictError("replacing a device's owner needs a reason: add --reason '...'")
        with self._tx() as conn:
            generation = self._bump(conn)
            previous = conn.execute(_CURRENT_OWNER, {"serial": serial}).scalar()
            if previous == account_id:
                raise ConflictError(f"device {serial!r} is already bonded to {account_id}")
            if previous is not None and not force:
                raise ConflictError(
                    f"device {serial!r} already belongs to {previous}; ownership moves by "
                    "pairing (a button hold on the device). To override as an operator, "
                    "add --force --reason '...'"
                )
            self._move(conn, serial, account_id, now, VIA_OPERATOR, generation)
            if previous is None:
                self._audit(conn, now, actor, BOND_ASSIGNED, serial, f"to {account_id}: {reason}")
            else:
                self._audit(
                    conn,
                    now,
                    actor,
                    BOND_REPLACED,
                    serial,
                    f"from {previous} to {account_id} by operator override: {reason}",
                )
        self._owners.forget([serial])
        return Bond(serial, account_id, now, None)

    @staticmethod
    def _move(
        conn: Connection, serial: str, account_id: str, now: float, via: str, generation: int
    ) -> None:
        """End the device's current bond (if any) and make ``account_id`` its owner."""
        conn.execute(
            bonds.update()
            .where(bonds.c.serial == serial, bonds.c.ended_at.is_(None))
            .values(ended_at=now, changed_gen=generation)
        )
        conn.execute(
            bonds.insert().values(
                serial=serial,
                account_id=account_id,
                since=now,
                ended_at=None,
                via=via,
                changed_gen=generation,
            )
        )

    # pairing
    def create_challenge(self, account_id: str, serial: str, now: float) -> Challenge:
        account = self.get_account(account_id)
        self._device_for(account, serial)
        challenge = Challenge(new_challenge(), serial, account_id, now + CHALLENGE_TTL_SECONDS)
        with self._tx() as conn:
            conn.execute(
                pairing_challenges.delete().where(
                    pairing_challenges.c.account_id == account_id,
                    pairing_challenges.c.expires_at < now - CHALLENGE_KEEP_SECONDS,
                )
            )
            conn.execute(
                pairing_challenges.insert().values(
                    challenge_hex=challenge.challenge_hex,
                    serial=serial,
                    account_id=account_id,
                    created_at=now,
                    expires_at=challenge.expires_at,
                    used_at=None,
                )
            )
            self._audit(
                conn,
                now,
                account_id,
                CHALLENGE_ISSUED,
                serial,
                f"challenge {challenge.challenge_hex} until {challenge.expires_at:.0f}",
            )
        return challenge

    def complete_pairing(
        self, serial: str, challenge_hex: str, account_id: str, now: float
    ) -> bool:
        canonical = normalise_challenge(challenge_hex) if isinstance(challenge_hex, str) else None
        with self._tx() as conn:
            generation = self._bump(conn)
            refusal: str | None
            if canonical is None:
                refusal = "not a challenge (28 hex characters expected)"
            else:
                row = conn.execute(
                    sa.select(pairing_challenges).where(
                        pairing_challenges.c.challenge_hex == canonical
                    )
                ).first()
                refusal = self._refusal(row, serial, account_id, now)
                if refusal is None:
                    self._pair(conn, serial, account_id, canonical, now, generation)
                elif refusal == ALREADY_USED and self._made_by(conn, serial, account_id, canonical):
                    return True  # the same bond record again: the bond it made still stands
            if refusal is not None:
                self._audit(
                    conn,
                    now,
                    account_id,
                    PAIRING_REFUSED,
                    serial,
                    f"{refusal}; challenge {str(challenge_hex)[:64]!r}",
                )
                return False
        self._owners.forget([serial])
        return True

    def _pair(
        self,
        conn: Connection,
        serial: str,
        account_id: str,
        challenge_hex: str,
        now: float,
        generation: int,
    ) -> None:
        previous = conn.execute(_CURRENT_OWNER, {"serial": serial}).scalar()
        conn.execute(
            pairing_challenges.update()
            .where(pairing_challenges.c.challenge_hex == challenge_hex)
            .values(used_at=now)
        )
        self._move(conn, serial, account_id, now, challenge_hex, generation)
        ended = "no previous owner" if previous is None else f"the bond of {previous} ended"
        self._audit(
            conn,
            now,
            account_id,
            PAIRING_COMPLETED,
            serial,
            f"owner is now {account_id}, {ended}; challenge {challenge_hex}",
        )

    @staticmethod
    def _refusal(row: Any, serial: str, account_id: str, now: float) -> str | None:
        """Why a bond record's challenge does not move the device, or None when it does."""
        if row is None:
            return "unknown challenge"
        if row.serial != serial:
            return f"challenge was issued for device {row.serial}"
        if row.account_id != account_id:
            return f"challenge was issued to account {row.account_id}"
        if row.used_at is not None:
            return ALREADY_USED
        if now >= row.expires_at:
            return f"challenge expired {now - row.expires_at:.0f} s before the record arrived"
        return None

    @staticmethod
    def _made_by(conn: Connection, serial: str, account_id: str, canonical: str) -> bool:
        current = conn.execute(
            sa.select(bonds.c.account_id, bonds.c.via).where(
                bonds.c.serial == serial, bonds.c.ended_at.is_(None)
            )
        ).first()
        return current is not None and current.account_id == account_id and current.via == canonical

    # audit
    def audit(self, subject: str | None = None, limit: int = 100) -> list[AuditEntry]:
        query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if subject is not None:
            query = query.where(audit_log.c.subject == subject)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [AuditEntry(r.at, r.actor, r.action, r.subject, r.detail) for r in rows]
