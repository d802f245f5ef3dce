"""device state: the device's class and last reported site

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("device_state", sa.Column("device_class", sa.String(64), nullable=True))
    op.add_column("device_state", sa.Column("site", sa.String(64), nullable=True))
    op.create_index("ix_device_state_seen", "device_state", ["tenant", "last_seen"])


def downgrade() -> None:
    op.drop_index("ix_device_state_seen", table_name="device_state")
    op.drop_column("device_state", "site")
    op.drop_column("device_state", "device_class")
