"""rollouts: rollouts, stages, halts, device update states, opt-outs; device trust anchors

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # The trust anchors a device listed in its newest hello (tether.projections.state).
    op.add_column("device_state", sa.Column("trust_anchors", sa.Text, nullable=True))
    # Rollouts (tether.rollouts.store).
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_class", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("cohort", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("windows", sa.Text, nullable=False),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("return_to_previous", sa.Boolean, nullable=False),
        sa.Column("return_hw", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
    )
    op.create_table(
        "rollout_stages",
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("is_share", sa.Boolean, nullable=False),
        sa.Column("soak_s", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("ended_at", sa.Float, nullable=True),
    )
    op.create_table(
        "rollout_halts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("hw", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("released_at", sa.Float, nullable=True),
    )
    op.create_index("ix_rollout_halts_rollout", "rollout_halts", ["rollout_id"])
    op.create_table(
        "rollout_devices",
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("hw", sa.String(32), nullable=False),
        sa.Column("site", sa.String(64), nullable=True),
        sa.Column("from_fw", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("changed_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=True),
        sa.Column("succeeded", sa.Boolean, nullable=False),
        sa.Column("report_seq", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_rollout_devices_serial", "rollout_devices", ["serial"])
    op.create_index("ix_rollout_devices_state", "rollout_devices", ["rollout_id", "stage", "state"])
    op.create_table(
        "rollout_signals",
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("at", sa.Float, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
    )
    op.create_index("ix_rollout_signals_at", "rollout_signals", ["rollout_id", "at"])
    op.create_table(
        "rollout_health",
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("at", sa.Float, primary_key=True),
        sa.Column("hw", sa.String(32), primary_key=True),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Column("reporting", sa.BigInteger, nullable=False),
        sa.Column("baseline", sa.Float, nullable=True),
    )
    op.create_table(
        "rollout_optouts",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "rollout_optouts",
        "rollout_health",
        "rollout_signals",
        "rollout_devices",
        "rollout_halts",
        "rollout_stages",
        "rollouts",
    ):
        op.drop_table(table)
    op.drop_column("device_state", "trust_anchors")
