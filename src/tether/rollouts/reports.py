"""What devices report about their updates: their rollouts, their states, their signals.

:class:`DeviceReports` is the part of :class:`~tether.rollouts.store.RolloutStore`
that devices' records feed: it finds each device's rollout, applies its reported
states through :func:`tether.rollouts.model.step` (refusing illegal or stale
ones), and keeps the health signals the monitor reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tether.registry.sql import SqlDatabase, insert
from tether.rollouts.health import Signal
from tether.rollouts.model import (
    BOOTED,
    LIVE,
    ROLLED_BACK,
    DeviceUpdate,
    IllegalTransitionError,
    step,
)
from tether.rollouts.tables import _update, rollout_devices, rollout_signals, rollouts


@dataclass(frozen=True)
class Report:
    """What a device said about its update: a state (and reason), from a record."""

    serial: str
    state: str
    at: float
    rollout_id: int | None = None  # None: the device's newest rollout
    reason: str | None = None
    seq: int | None = None


@dataclass(frozen=True)
class Applied:
    changed: int
    ignored: list[str]  # why each refused report was refused


@dataclass(frozen=True)
class Target:
    """The newest rollout a device belongs to, and its part in it."""

    rollout_id: int
    version: str
    state: str
    live: bool
    report_seq: int | None = None


class DeviceReports(SqlDatabase):
    """Devices' reports and signals, on the rollouts' tables (a part of the rollout store)."""

    def _rows(self, conn: Connection, rid: int, serials: Sequence[str]) -> dict[str, DeviceUpdate]:
        out = {}
        for i in range(0, len(serials), 5000):
            for r in conn.execute(
                sa.select(rollout_devices).where(
                    rollout_devices.c.rollout_id == rid,
                    rollout_devices.c.serial.in_(list(serials[i : i + 5000])),
                )
            ):
                out[r.serial] = _update(r._mapping)
        return out

    def targets(self, serials: Iterable[str]) -> dict[str, Target]:
        """Each device's newest rollout (aborted ones too: a late rollback still counts)."""
        wanted = sorted(set(serials))
        out: dict[str, Target] = {}
        d, r = rollout_devices.c, rollouts.c
        with self._read() as conn:
            for i in range(0, len(wanted), 5000):
                query = (
                    sa.select(d.serial, d.rollout_id, r.version, d.state, r.state, d.report_seq)
                    .join(rollouts, rollouts.c.id == d.rollout_id)
                    .where(d.serial.in_(wanted[i : i + 5000]))
                    .order_by(d.rollout_id)
                )
                for serial, rid, version, state, rstate, seq in conn.execute(query):
                    out[serial] = Target(int(rid), str(version), str(state), rstate in LIVE, seq)
        return out

    def apply(self, reports: Sequence[Report]) -> Applied:
        """Apply devices' reports in one transaction; refused ones are listed, not raised.

        A report older (by seq) than the last one applied to the device is
        ignored, so records arriving out of order cannot move a device back.
        """
        if not reports:
            return Applied(0, [])
        targets = self.targets(r.serial for r in reports if r.rollout_id is None)
        ignored: list[str] = []
        changed: dict[tuple[int, str], DeviceUpdate] = {}
        with self._tx() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            wanted: dict[int, list[str]] = {}
            resolved: list[tuple[int, Report]] = []
            for rep in reports:
                rid = rep.rollout_id
                if rid is None:
                    t = targets.get(rep.serial)
                    if t is None:
                        continue
                    rid = t.rollout_id
                wanted.setdefault(rid, []).append(rep.serial)
                resolved.append((rid, rep))
            current: dict[tuple[int, str], DeviceUpdate] = {}
            for rid, serials in wanted.items():
                for serial, row in self._rows(conn, rid, sorted(set(serials))).items():
                    current[(rid, serial)] = row
            for rid, rep in resolved:
                key = (rid, rep.serial)
                found = current.get(key)
                if found is None:
                    ignored.append(f"{rep.serial}: not in rollout {rid}")
                    continue
                row = found
                if rep.seq is not None and row.report_seq is not None and rep.seq <= row.report_seq:
                    if rep.state != row.state:
                        ignored.append(f"{rep.serial}: report seq {rep.seq} is stale")
                    continue
                try:
                    state = step(rep.serial, row.state, rep.state)
                except IllegalTransitionError as exc:
                    ignored.append(str(exc))
                    continue
                if state == row.state and rep.reason == row.reason:
                    continue
                row = DeviceUpdate(
                    **{
                        **row.__dict__,
                        "state": state,
                        "reason": rep.reason,
                        "changed_at": rep.at,
                        "report_seq": rep.seq if rep.seq is not None else row.report_seq,
                        "updated_at": row.updated_at
                        if row.updated_at is not None or state != BOOTED
                        else rep.at,
                        "succeeded": row.succeeded or state == BOOTED,
                    }
                )
                current[key] = changed[key] = row
            if changed:
                conn.execute(
                    rollout_devices.update()
                    .where(
                        rollout_devices.c.rollout_id == sa.bindparam("rid"),
                        rollout_devices.c.serial == sa.bindparam("sn"),
                    )
                    .values(
                        state=sa.bindparam("st"),
                        reason=sa.bindparam("rs"),
                        changed_at=sa.bindparam("ca"),
                        report_seq=sa.bindparam("sq"),
                        updated_at=sa.bindparam("ua"),
                        succeeded=sa.bindparam("ok"),
                    ),
                    [
                        {
                            "rid": rid,
                            "sn": u.serial,
                            "st": u.state,
                            "rs": u.reason,
                            "ca": u.changed_at,
                            "sq": u.report_seq,
                            "ua": u.updated_at,
                            "ok": u.succeeded,
                        }
                        for (rid, _), u in changed.items()
                    ],
                )
        return Applied(len(changed), ignored)

    def rollbacks_by_version(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Per (class, target version): devices rolled back, and how many of them after success."""
        d, r = rollout_devices.c, rollouts.c
        query = (
            sa.select(
                r.device_class,
                r.version,
                sa.func.count(),
                sa.func.sum(sa.case((d.succeeded, 1), else_=0)),
            )
            .join(rollouts, r.id == d.rollout_id)
            .where(d.state == ROLLED_BACK)
            .group_by(r.device_class, r.version)
        )
        with self._read() as conn:
            return {(c, v): (int(n), int(s or 0)) for c, v, n, s in conn.execute(query)}

    # signals and health
    def add_signals(self, rows: Sequence[tuple[int, str, float, str]]) -> None:
        if not rows:
            return
        with self._tx() as conn:
            conn.execute(  # a replayed batch adds nothing
                insert(conn, rollout_signals).on_conflict_do_nothing(),
                [{"rollout_id": rid, "serial": s, "at": at, "kind": k} for rid, s, at, k in rows],
            )

    def signals(self, rid: int, since: float) -> list[Signal]:
        c = rollout_signals.c
        with self._read() as conn:
            return [
                (r[0], float(r[1]), str(r[2]))
                for r in conn.execute(
                    sa.select(c.serial, c.at, c.kind).where(c.rollout_id == rid, c.at >= since)
                )
            ]

    def trim_signals(self, before: float) -> int:
        with self._tx() as conn:
            return int(
                conn.execute(rollout_signals.delete().where(rollout_signals.c.at < before)).rowcount
            )
