"""Accounts and their bearer tokens."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.accounts.conftest import Fleet
from tether.accounts.base import hash_token
from tether.accounts.sql import accounts as accounts_table
from tether.errors import AuthenticationError, NotFoundError
from tether.registry.sql import make_engine


def test_an_account_is_a_random_pseudonymous_id_and_a_tenant(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    a = store.create_account("acme", fleet.clock())
    b = store.create_account("acme", fleet.clock())
    assert re.fullmatch(r"acc_[0-9a-hjkmnp-tv-z]{16}", a.id)
    assert a.id != b.id
    assert (a.tenant, a.created_at) == ("acme", fleet.clock())
    assert store.get_account(a.id) == a
    # Nothing in the table could hold personal data.
    assert {c.name for c in accounts_table.columns} == {"id", "tenant", "created_at"}


def test_an_account_needs_a_known_tenant(fleet: Fleet) -> None:
    with pytest.raises(NotFoundError, match="tether ca init --tenant initech"):
        fleet.platform.accounts.create_account("initech", fleet.clock())
    with pytest.raises(NotFoundError, match="tether accounts create"):
        fleet.platform.accounts.get_account("acc_nobody")


def test_tokens_authenticate_their_account_and_only_their_hash_is_stored(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    account = store.create_account("acme", fleet.clock())
    first = store.issue_token(account.id, fleet.clock())
    second = store.issue_token(account.id, fleet.clock())
    assert first != second and len(first) >= 43
    assert store.authenticate(first) == account
    assert store.authenticate(second) == account

    raw = entity_store_bytes(fleet)
    assert hash_token(first).encode() in raw
    assert first.encode() not in raw and second.encode() not in raw


@pytest.mark.parametrize("token", ["", "nope", "x" * 5000, "\udcff"])
def test_unknown_tokens_are_refused(fleet: Fleet, token: str) -> None:
    with pytest.raises(AuthenticationError):
        fleet.platform.accounts.authenticate(token)


def test_a_revoked_token_is_refused_and_others_still_work(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    account = store.create_account("acme", fleet.clock())
    lost, kept = (
        store.issue_token(account.id, fleet.clock()),
        store.issue_token(account.id, fleet.clock()),
    )
    store.revoke_token(lost, fleet.clock())
    with pytest.raises(AuthenticationError, match="unknown or revoked"):
        store.authenticate(lost)
    assert store.authenticate(kept) == account
    with pytest.raises(AuthenticationError, match="already revoked"):
        store.revoke_token(lost, fleet.clock())


def test_tokens_for_unknown_accounts_are_refused(fleet: Fleet) -> None:
    with pytest.raises(NotFoundError):
        fleet.platform.accounts.issue_token("acc_0000000000000000", fleet.clock())


def test_account_and_token_changes_are_audited_without_the_token(fleet: Fleet) -> None:
    store = fleet.platform.accounts
    account = store.create_account("acme", fleet.clock(), actor="operator:ops1")
    token = store.issue_token(account.id, fleet.clock(), actor="operator:ops1")
    store.revoke_token(token, fleet.clock(), actor="operator:ops2")
    entries = store.audit(subject=account.id)
    assert [e.action for e in entries] == ["token.revoked", "token.issued", "account.created"]
    assert [e.actor for e in entries] == ["operator:ops2", "operator:ops1", "operator:ops1"]
    assert all(token not in e.detail for e in entries)
    assert entries[0].detail == entries[1].detail == f"tok_{hash_token(token)[:12]}"


def entity_store_bytes(fleet: Fleet) -> bytes:
    """Everything the entity store holds: its SQLite files, or every row of every table."""
    url = fleet.platform.settings.resolved_entity_url()
    if url.startswith("sqlite"):
        return b"".join(p.read_bytes() for p in fleet.data_dir.glob("entity.sqlite*"))
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            rows = [
                repr(tuple(row)).encode()
                for table in tables
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"'))
            ]
    finally:
        engine.dispose()
    assert rows
    return b"\n".join(rows)


def test_the_accounts_tables_live_in_the_entity_store(fleet: Fleet) -> None:
    engine = make_engine(fleet.platform.settings.resolved_entity_url())
    try:
        names = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"accounts", "account_tokens", "bonds", "pairing_challenges", "audit_log"} <= names
    assert "devices" in names
