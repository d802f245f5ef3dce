"""Rollouts in the entity store: rollouts, stages, halts, per-device update state, opt-outs.

SQLite creates these tables itself; PostgreSQL gets them from entity revision
0004 (``tether migrate``). Per-device changes go through
:func:`tether.rollouts.model.step`, so an illegal one is refused the same way
whether a command, the monitor or the tracker asked for it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tether.errors import NotFoundError
from tether.projections.state import DeviceStateStore, device_state
from tether.registry.sql import SqlDatabase, insert
from tether.rollouts.health import Signal
from tether.rollouts.model import (
    ABORTED,
    BOOTED,
    COMPLETED,
    HALTED,
    LIVE,
    ROLLED_BACK,
    RUNNING,
    CohortSpec,
    DeviceUpdate,
    HaltReason,
    IllegalTransitionError,
    Rollout,
    RolloutError,
    Stage,
    StageRecord,
    step,
)
from tether.rollouts.plan import OptOuts

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

OPT_OUT_KINDS = ("tenant", "site", "device")


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


class RolloutStore(SqlDatabase):
    """Rollouts and everything about them, in the entity database."""

    def __init__(self, url: str) -> None:
        super().__init__(url, metadata)
        if self.engine.dialect.name != "postgresql":
            DeviceStateStore(url).close()  # the device state it reads, made or upgraded

    # rollouts
    def create(
        self,
        spec: CohortSpec,
        version: str,
        stages: Sequence[Stage],
        sizes: Sequence[int],
        members: Iterable[tuple[str, int, str, str, str | None, str | None]],
        now: float,
        seed: int = 0,
        windows: Mapping[str, str] | None = None,
        policy: Mapping[str, float] | None = None,
    ) -> int:
        """Record a rollout, its stages and devices ``(serial, stage, tenant, hw, site, fw)``."""
        cohort = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.__dict__.items()}
        with self._tx() as conn:
            key = conn.execute(
                rollouts.insert().values(
                    device_class=spec.device_class,
                    version=version,
                    cohort=json.dumps(cohort, sort_keys=True),
                    state=RUNNING,
                    seed=seed,
                    windows=json.dumps(dict(windows or {}), sort_keys=True),
                    policy=json.dumps(dict(policy or {}), sort_keys=True),
                    return_to_previous=False,
                    created_at=now,
                )
            ).inserted_primary_key
            if key is None:
                raise RolloutError("the entity store returned no id for the new rollout")
            rid = int(key[0])
            conn.execute(
                rollout_stages.insert(),
                [
                    {
                        "rollout_id": rid,
                        "idx": i,
                        "label": s.label,
                        "amount": s.amount,
                        "is_share": s.is_share,
                        "soak_s": s.soak_s,
                        "size": size,
                    }
                    for i, (s, size) in enumerate(zip(stages, sizes, strict=True))
                ],
            )
            rows = [
                {
                    "rollout_id": rid,
                    "serial": serial,
                    "stage": stage,
                    "tenant": tenant,
                    "hw": hw,
                    "site": site,
                    "from_fw": fw,
                    "state": "queued",
                    "changed_at": now,
                    "succeeded": False,
                }
                for serial, stage, tenant, hw, site, fw in members
            ]
            for i in range(0, len(rows), 5000):
                conn.execute(rollout_devices.insert(), rows[i : i + 5000])
        return rid

    def get(self, rid: int) -> Rollout:
        with self._read() as conn:
            row = conn.execute(sa.select(rollouts).where(rollouts.c.id == rid)).first()
            if row is None:
                raise NotFoundError(f"no rollout {rid}; see: tether rollout list")
            return self._rollout(conn, row._mapping)

    def rollouts(self, states: Sequence[str] | None = None) -> list[Rollout]:
        query = sa.select(rollouts).order_by(rollouts.c.id)
        if states:
            query = query.where(rollouts.c.state.in_(list(states)))
        with self._read() as conn:
            return [self._rollout(conn, r._mapping) for r in conn.execute(query).all()]

    def _rollout(self, conn: Connection, m: Any) -> Rollout:
        rid = int(m["id"])
        stages = [
            StageRecord(
                r.idx,
                Stage(float(r.amount), bool(r.is_share), int(r.soak_s), r.label),
                int(r.size),
                r.started_at,
                r.ended_at,
            )
            for r in conn.execute(
                sa.select(rollout_stages)
                .where(rollout_stages.c.rollout_id == rid)
                .order_by(rollout_stages.c.idx)
            )
        ]
        halts = [
            HaltReason(r.rule, r.detail, r.at, r.hw)
            for r in conn.execute(
                sa.select(rollout_halts)
                .where(rollout_halts.c.rollout_id == rid, rollout_halts.c.released_at.is_(None))
                .order_by(rollout_halts.c.id)
            )
        ]
        cohort = json.loads(str(m["cohort"]))
        spec = CohortSpec(
            str(cohort["device_class"]),
            *(tuple(cohort.get(k, ())) for k in ("hw", "from_fw", "sites", "devices", "tenants")),
        )
        return Rollout(
            id=rid,
            device_class=str(m["device_class"]),
            version=str(m["version"]),
            cohort=spec,
            state=str(m["state"]),
            created_at=float(m["created_at"]),
            seed=int(m["seed"]),
            stages=stages,
            halts=halts,
            windows=json.loads(str(m["windows"])),
            policy=json.loads(str(m["policy"])),
            return_to_previous=bool(m["return_to_previous"]),
            return_hw=tuple(json.loads(str(m["return_hw"]))) if m["return_hw"] else (),
            ended_at=None if m["ended_at"] is None else float(m["ended_at"]),
        )

    def released_halts(self, rid: int) -> list[tuple[HaltReason, float]]:
        """Halts a human released, with when."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(rollout_halts)
                .where(rollout_halts.c.rollout_id == rid, rollout_halts.c.released_at.is_not(None))
                .order_by(rollout_halts.c.id)
            ).all()
        return [(HaltReason(r.rule, r.detail, r.at, r.hw), float(r.released_at)) for r in rows]

    def _set_state(self, conn: Connection, rid: int, state: str, **values: object) -> None:
        conn.execute(rollouts.update().where(rollouts.c.id == rid).values(state=state, **values))

    def start_stage(self, rid: int, index: int, now: float) -> None:
        with self._tx() as conn:
            conn.execute(
                rollout_stages.update()
                .where(
                    rollout_stages.c.rollout_id == rid,
                    rollout_stages.c.idx < index,
                    rollout_stages.c.ended_at.is_(None),
                )
                .values(ended_at=now)
            )
            conn.execute(
                rollout_stages.update()
                .where(rollout_stages.c.rollout_id == rid, rollout_stages.c.idx == index)
                .values(started_at=now)
            )

    def halt(self, rid: int, reasons: Sequence[HaltReason]) -> None:
        """Hold the rollout and record why (reasons already on record are not repeated)."""
        with self._tx() as conn:
            have = {
                (r.rule, r.hw)
                for r in conn.execute(
                    sa.select(rollout_halts.c.rule, rollout_halts.c.hw).where(
                        rollout_halts.c.rollout_id == rid, rollout_halts.c.released_at.is_(None)
                    )
                )
            }
            new = [r for r in reasons if (r.rule, r.hw) not in have]
            if new:
                conn.execute(
                    rollout_halts.insert(),
                    [
                        {
                            "rollout_id": rid,
                            "rule": r.rule,
                            "hw": r.hw,
                            "detail": r.detail,
                            "at": r.at,
                        }
                        for r in new
                    ],
                )
            self._set_state(conn, rid, HALTED)

    def release(self, rid: int, now: float) -> None:
        with self._tx() as conn:
            conn.execute(
                rollout_halts.update()
                .where(rollout_halts.c.rollout_id == rid, rollout_halts.c.released_at.is_(None))
                .values(released_at=now)
            )
            self._set_state(conn, rid, RUNNING)

    def finish(
        self,
        rid: int,
        state: str,
        now: float,
        return_to_previous: bool = False,
        return_hw: Sequence[str] = (),
    ) -> None:
        if state not in (COMPLETED, ABORTED):
            raise RolloutError(f"a rollout ends completed or aborted, not {state}")
        with self._tx() as conn:
            conn.execute(
                rollout_stages.update()
                .where(rollout_stages.c.rollout_id == rid, rollout_stages.c.started_at.is_not(None))
                .where(rollout_stages.c.ended_at.is_(None))
                .values(ended_at=now)
            )
            self._set_state(
                conn,
                rid,
                state,
                ended_at=now,
                return_to_previous=return_to_previous,
                return_hw=json.dumps(sorted(return_hw)) if return_hw else None,
            )

    # devices
    def devices(self, rid: int, stages: Sequence[int] | None = None) -> list[DeviceUpdate]:
        query = sa.select(rollout_devices).where(rollout_devices.c.rollout_id == rid)
        if stages is not None:
            query = query.where(rollout_devices.c.stage.in_(list(stages)))
        with self._read() as conn:
            return [
                _update(r._mapping) for r in conn.execute(query.order_by(rollout_devices.c.serial))
            ]

    def counts(self, rid: int) -> dict[int, Counter[str]]:
        """Per stage: how many devices are in each update state."""
        c = rollout_devices.c
        query = (
            sa.select(c.stage, c.state, sa.func.count())
            .where(c.rollout_id == rid)
            .group_by(c.stage, c.state)
        )
        out: dict[int, Counter[str]] = {}
        with self._read() as conn:
            for stage, state, n in conn.execute(query):
                out.setdefault(int(stage), Counter())[str(state)] = int(n)
        return out

    def last_seen(self, rid: int) -> dict[str, float]:
        """When each of the rollout's devices last landed anything (seconds), from device state."""
        d = rollout_devices.c
        query = (
            sa.select(d.serial, device_state.c.last_seen)
            .join(device_state, device_state.c.serial == d.serial)
            .where(d.rollout_id == rid)
        )
        with self._read() as conn:
            return {r[0]: r[1] / 1000 for r in conn.execute(query)}

    def notify(self, rid: int, serials: Sequence[str], now: float) -> list[str]:
        """Move queued (or failed) devices to notified; return those moved."""
        return self.move(rid, serials, "notified", now)

    def move(self, rid: int, serials: Sequence[str], wanted: str, now: float) -> list[str]:
        """Move devices to ``wanted`` (the platform's own steps); return those moved."""
        moved: list[str] = []
        with self._tx() as conn:
            rows = self._rows(conn, rid, serials)
            for serial in serials:
                current = rows.get(serial)
                if current is None or current.state == wanted:
                    continue
                step(serial, current.state, wanted)
                moved.append(serial)
            for i in range(0, len(moved), 5000):
                conn.execute(
                    rollout_devices.update()
                    .where(
                        rollout_devices.c.rollout_id == rid,
                        rollout_devices.c.serial.in_(moved[i : i + 5000]),
                    )
                    .values(state=wanted, changed_at=now, reason=None)
                )
        return moved

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

    def record_health(
        self, rid: int, at: float, rows: Sequence[tuple[str, int, int, float | None]]
    ) -> None:
        if not rows:
            return
        with self._tx() as conn:
            conn.execute(
                rollout_health.insert(),
                [
                    {
                        "rollout_id": rid,
                        "at": at,
                        "hw": hw,
                        "updated": u,
                        "reporting": n,
                        "baseline": b,
                    }
                    for hw, u, n, b in rows
                ],
            )

    def health(self, rid: int) -> list[tuple[float, str, int, int, float | None]]:
        c = rollout_health.c
        with self._read() as conn:
            return [
                (float(r[0]), str(r[1]), int(r[2]), int(r[3]), r[4])
                for r in conn.execute(
                    sa.select(c.at, c.hw, c.updated, c.reporting, c.baseline)
                    .where(c.rollout_id == rid)
                    .order_by(c.at, c.hw)
                )
            ]

    # opt-outs
    def opt_out(self, kind: str, name: str, now: float) -> None:
        _check_kind(kind)
        with self._tx() as conn:
            exists = conn.execute(
                sa.select(rollout_optouts.c.name).where(
                    rollout_optouts.c.kind == kind, rollout_optouts.c.name == name
                )
            ).first()
            if exists is None:
                conn.execute(rollout_optouts.insert().values(kind=kind, name=name, at=now))

    def opt_in(self, kind: str, name: str) -> bool:
        _check_kind(kind)
        with self._tx() as conn:
            gone = conn.execute(
                rollout_optouts.delete().where(
                    rollout_optouts.c.kind == kind, rollout_optouts.c.name == name
                )
            )
        return bool(gone.rowcount)

    def optouts(self) -> OptOuts:
        found: dict[str, set[str]] = {k: set() for k in OPT_OUT_KINDS}
        with self._read() as conn:
            for kind, name in conn.execute(
                sa.select(rollout_optouts.c.kind, rollout_optouts.c.name)
            ):
                found[str(kind)].add(str(name))
        return OptOuts(
            frozenset(found["tenant"]), frozenset(found["site"]), frozenset(found["device"])
        )

    def fleet(
        self, device_class: str
    ) -> list[tuple[str, str, str | None, str | None, str | None, float]]:
        """Device state of a class: ``(serial, tenant, hw, fw, site, last_seen)``."""
        c = device_state.c
        with self._read() as conn:
            return [
                (r[0], r[1], r[2], r[3], r[4], r[5] / 1000)
                for r in conn.execute(
                    sa.select(c.serial, c.tenant, c.hw, c.fw, c.site, c.last_seen).where(
                        c.device_class == device_class
                    )
                )
            ]

    def trust_anchors(self, serials: Sequence[str]) -> dict[str, list[str] | None]:
        c = device_state.c
        out: dict[str, list[str] | None] = {}
        with self._read() as conn:
            for i in range(0, len(serials), 5000):
                for serial, anchors in conn.execute(
                    sa.select(c.serial, c.trust_anchors).where(
                        c.serial.in_(list(serials[i : i + 5000]))
                    )
                ):
                    out[serial] = None if anchors is None else json.loads(anchors)
        return out


def _check_kind(kind: str) -> None:
    if kind not in OPT_OUT_KINDS:
        raise RolloutError(f"opt-outs are by {', '.join(OPT_OUT_KINDS)}, not {kind!r}")
