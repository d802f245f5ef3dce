"""registry, accounts, device state and reject log

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # The registry (tether.registry.sql).
    op.create_table(
        "tenants",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("jit_enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "cas",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), sa.ForeignKey("tenants.name"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_label", sa.String(256), nullable=True),
        sa.Column("cert_pem", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trusted_until", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "devices",
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), sa.ForeignKey("tenants.name"), nullable=False),
        sa.Column("device_class", sa.String(64), nullable=False),
        sa.Column("hw", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("not_after", sa.Float, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("revoke_reason", sa.Text, nullable=True),
    )
    op.create_index("ix_devices_tenant", "devices", ["tenant"])
    op.create_table(
        "certificates",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("serial", sa.String(64), sa.ForeignKey("devices.serial"), nullable=False),
        sa.Column("serial_number", sa.String(40), nullable=False),
        sa.Column("ca_id", sa.Integer, sa.ForeignKey("cas.id"), nullable=False),
        sa.Column("not_after", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pem", sa.Text, nullable=False),
        sa.Column("issued_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_index("ix_certificates_serial", "certificates", ["serial"])
    op.create_index("ix_certificates_ca_status", "certificates", ["ca_id", "status"])
    op.create_index("ix_certificates_status_not_after", "certificates", ["status", "not_after"])
    op.create_table(
        "counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )

    # Accounts, tokens, bonds, pairing and the audit log (tether.accounts.sql).
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(64), sa.ForeignKey("tenants.name"), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_accounts_tenant", "accounts", ["tenant"])
    op.create_table(
        "account_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_index("ix_account_tokens_account", "account_tokens", ["account_id"])
    op.create_table(
        "bonds",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("serial", sa.String(64), sa.ForeignKey("devices.serial"), nullable=False),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("since", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("via", sa.String(64), nullable=False),
        sa.Column("changed_gen", sa.Integer, nullable=False),
    )
    op.create_index("ix_bonds_account", "bonds", ["account_id", "ended_at"])
    op.create_index("ix_bonds_serial", "bonds", ["serial", "id"])
    op.create_index("ix_bonds_changed_gen", "bonds", ["changed_gen"])
    # At most one current owner per device, enforced by the database.
    op.create_index(
        "ux_bonds_current",
        "bonds",
        ["serial"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.create_table(
        "pairing_challenges",
        sa.Column("challenge_hex", sa.String(28), primary_key=True),
        sa.Column("serial", sa.String(64), sa.ForeignKey("devices.serial"), nullable=False),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
    )
    op.create_index(
        "ix_pairing_challenges_account", "pairing_challenges", ["account_id", "expires_at"]
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_log_subject", "audit_log", ["subject", "id"])

    # Projections kept in the entity database (tether.projections.state, .rejects).
    op.create_table(
        "device_state",
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("fw", sa.String(32), nullable=True),
        sa.Column("hw", sa.String(32), nullable=True),
        sa.Column("announced", sa.Text, nullable=False),
        sa.Column("agreed", sa.Text, nullable=False),
        sa.Column("lowest_seq_held", sa.BigInteger, nullable=True),
        sa.Column("hello_seq", sa.BigInteger, nullable=True),
        sa.Column("boot_seq", sa.BigInteger, nullable=True),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "rejects",
        sa.Column("offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("device_class", sa.String(64), nullable=True),
        sa.Column("fw", sa.String(32), nullable=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("door", sa.String(16), nullable=False),
        sa.Column("arrival", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_rejects_serial", "rejects", ["serial", "offset"])


def downgrade() -> None:
    for table in (
        "rejects",
        "device_state",
        "audit_log",
        "pairing_challenges",
        "bonds",
        "account_tokens",
        "accounts",
        "counters",
        "certificates",
        "devices",
        "cas",
        "tenants",
    ):
        op.drop_table(table)
