"""Rollouts in the entity store: rollouts, stages, halts, per-device update state, opt-outs.

The tables are in :mod:`~tether.rollouts.tables`, what devices report (their
states and signals) in :mod:`~tether.rollouts.reports`; this module keeps the
rollouts themselves and re-exports both. Per-device changes go through
:func:`tether.rollouts.model.step`, so an illegal one is refused the same way
whether a command, the monitor or the tracker asked for it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tether.errors import NotFoundError
from tether.projections.state import DeviceStateStore, device_state
from tether.registry.sql import SqlDatabase
from tether.rollouts.model import (
    ABORTED,
    COMPLETED,
    HALTED,
    RUNNING,
    CohortSpec,
    DeviceUpdate,
    HaltReason,
    Rollout,
    RolloutError,
    Stage,
    StageRecord,
    step,
)
from tether.rollouts.plan import OptOuts
from tether.rollouts.reports import Applied, DeviceReports, Report, Target
from tether.rollouts.tables import (
    _update,
    metadata,
    rollout_devices,
    rollout_halts,
    rollout_health,
    rollout_optouts,
    rollout_signals,
    rollout_stages,
    rollouts,
)

__all__ = [
    "OPT_OUT_KINDS",
    "Applied",
    "DeviceReports",
    "Report",
    "RolloutStore",
    "Target",
    "metadata",
    "rollout_devices",
    "rollout_halts",
    "rollout_health",
    "rollout_optouts",
    "rollout_signals",
    "rollout_stages",
    "rollouts",
]

OPT_OUT_KINDS = ("tenant", "site", "device")


class RolloutStore(DeviceReports, SqlDatabase):
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
    def devices(
        self,
        rid: int,
        stages: Sequence[int] | None = None,
        states: Iterable[str] | None = None,
    ) -> list[DeviceUpdate]:
        """The rollout's devices, of these stages and in these states when given."""
        query = sa.select(rollout_devices).where(rollout_devices.c.rollout_id == rid)
        if stages is not None:
            query = query.where(rollout_devices.c.stage.in_(list(stages)))
        if states is not None:
            query = query.where(rollout_devices.c.state.in_(sorted(states)))
        with self._read() as conn:
            return [
                _update(r._mapping) for r in conn.execute(query.order_by(rollout_devices.c.serial))
            ]

    def updates(self, rid: int, serials: Sequence[str]) -> dict[str, DeviceUpdate]:
        """These devices' parts in the rollout (those in it), by serial."""
        with self._read() as conn:
            return self._rows(conn, rid, serials)

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

    # health (the signals behind it are in reports.py)
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
