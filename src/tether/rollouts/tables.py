"""The rollouts' tables in the entity database, and the decoder of a device's row.

SQLite creates these tables itself; PostgreSQL gets them from entity revision
0004 (``tether migrate``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tether.rollouts.model import DeviceUpdate

metadata = sa.MetaData()
rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("device_class", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("cohort", sa.Text, nullable=False),  # JSON
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("windows", sa.Text, nullable=False),  # JSON: site -> window
    sa.Column("policy", sa.Text, nullable=False),  # JSON: halt policy
    sa.Column("return_to_previous", sa.Boolean, nullable=False),
    sa.Column("return_hw", sa.Text, nullable=True),  # JSON list; null: every revision
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
)
rollout_stages = sa.Table(
    "rollout_stages",
    metadata,
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
rollout_halts = sa.Table(
    "rollout_halts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("hw", sa.String(32), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("released_at", sa.Float, nullable=True),
    sa.Index("ix_rollout_halts_rollout", "rollout_id"),
)
rollout_devices = sa.Table(
    "rollout_devices",
    metadata,
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
    sa.Index("ix_rollout_devices_serial", "serial"),
    sa.Index("ix_rollout_devices_state", "rollout_id", "stage", "state"),
)
rollout_signals = sa.Table(
    "rollout_signals",
    metadata,
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
    sa.Column("serial", sa.String(64), primary_key=True),
    sa.Column("at", sa.Float, primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Index("ix_rollout_signals_at", "rollout_id", "at"),
)
rollout_health = sa.Table(
    "rollout_health",
    metadata,
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
    sa.Column("at", sa.Float, primary_key=True),
    sa.Column("hw", sa.String(32), primary_key=True),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Column("reporting", sa.BigInteger, nullable=False),
    sa.Column("baseline", sa.Float, nullable=True),
)
rollout_optouts = sa.Table(
    "rollout_optouts",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),  # tenant | site | device
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
)


def _update(m: Any) -> DeviceUpdate:
    return DeviceUpdate(
        serial=str(m["serial"]),
        stage=int(m["stage"]),
        hw=str(m["hw"]),
        site=None if m["site"] is None else str(m["site"]),
        from_fw=None if m["from_fw"] is None else str(m["from_fw"]),
        state=str(m["state"]),
        reason=None if m["reason"] is None else str(m["reason"]),
        changed_at=float(m["changed_at"]),
        updated_at=None if m["updated_at"] is None else float(m["updated_at"]),
        succeeded=bool(m["succeeded"]),
        report_seq=None if m["report_seq"] is None else int(m["report_seq"]),
    )
