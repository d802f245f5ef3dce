"""time-partitioned telemetry and the event identity table

Revision ID: 0001
Revises:

``telemetry`` is range-partitioned on ``ts`` (ms since the epoch). The store
makes one partition per UTC day as events need them (and a week ahead); this
revision makes only the parent, its partitioned indexes, and two outer
partitions for timestamps before the year 1 and from the year 10000 on, which
no day partition can name. There is no DEFAULT partition.

``event_keys`` holds each stored event's identity ``(serial, dedupe_key)``
once, across all partitions: a unique index on the partitioned table would have
to include ``ts``, and a replay may carry another corrected time.

Text columns compared or sorted by the port use the "C" collation, so order is
byte order whatever the database's locale (as in the SQLite engine).
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Bounds of the outer partitions: 0001-01-01 and 10000-01-01 UTC in ms.
BEFORE_YEAR_1_MS = -62_135_596_800_000
FROM_YEAR_10000_MS = 253_402_300_800_000


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE event_keys (
            serial text COLLATE "C" NOT NULL,
            dedupe_key text COLLATE "C" NOT NULL,
            PRIMARY KEY (serial, dedupe_key)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE telemetry (
            ts bigint NOT NULL,
            seq bigint,
            device_ts bigint NOT NULL,
            arrival bigint NOT NULL,
            v bigint NOT NULL,
            clock_corrected boolean NOT NULL,
            serial text COLLATE "C" NOT NULL,
            dedupe_key text COLLATE "C" NOT NULL,
            tenant text COLLATE "C" NOT NULL,
            device_class text COLLATE "C" NOT NULL,
            site text COLLATE "C",
            type text NOT NULL,
            fw text,
            body text NOT NULL
        ) PARTITION BY RANGE (ts)
        """
    )
    # Partitioned indexes: every partition gets its own copy when it is attached.
    op.execute(
        "CREATE INDEX telemetry_latest ON telemetry "
        "(serial, ts DESC, seq DESC NULLS LAST, dedupe_key DESC)"
    )
    op.execute(
        "CREATE INDEX telemetry_by_site ON telemetry (tenant, site, ts) WHERE site IS NOT NULL"
    )
    op.execute("CREATE INDEX telemetry_by_class ON telemetry (tenant, device_class, ts)")
    op.execute("CREATE INDEX telemetry_by_tenant ON telemetry (tenant, ts)")
    op.execute(
        "CREATE TABLE telemetry_before_year_1 PARTITION OF telemetry "
        f"FOR VALUES FROM (MINVALUE) TO ({BEFORE_YEAR_1_MS})"
    )
    op.execute(
        "CREATE TABLE telemetry_from_year_10000 PARTITION OF telemetry "
        f"FOR VALUES FROM ({FROM_YEAR_10000_MS}) TO (MAXVALUE)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE telemetry")
    op.execute("DROP TABLE event_keys")
