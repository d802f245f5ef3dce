"""firmware artifacts: the catalog of signed images

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # The artifact catalog (tether.firmware.catalog).
    op.create_table(
        "firmware_artifacts",
        sa.Column("device_class", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("hw", sa.Text, nullable=False),
        sa.Column("security_version", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("blob_key", sa.String(128), nullable=False),
        sa.Column("manifest", sa.LargeBinary, nullable=False),
        sa.Column("signature", sa.LargeBinary, nullable=False),
        sa.Column("delta_from", sa.String(32), nullable=True),
        sa.Column("delta_blob_key", sa.String(128), nullable=True),
        sa.Column("delta_size", sa.BigInteger, nullable=True),
        sa.Column("delta_manifest", sa.LargeBinary, nullable=True),
        sa.Column("delta_signature", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("firmware_artifacts")
