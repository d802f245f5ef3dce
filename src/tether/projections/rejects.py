"""Rejected records, from the dead-letter stream, countable by device, class and firmware.

Each dead letter becomes one row keyed by its stream offset (inserted with ``ON
CONFLICT DO NOTHING``), so projecting a batch twice, or in two processes at
once, changes nothing. Text from a dead letter's headers is cut to its column's
width, NUL replaced by U+FFFD: a refused record may carry anything. The firmware
is the device's as known when the reject is projected (from its last hello or
boot).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tether.projections.state import DeviceStateStore
from tether.registry.base import DeviceRegistry
from tether.registry.sql import SqlDatabase, insert
from tether.stream.base import Stream

CONSUMER = "rejects"
metadata = sa.MetaData()
rejects = sa.Table(
    "rejects",
    metadata,
    sa.Column("offset", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("serial", sa.String(64), nullable=False),
    sa.Column("device_class", sa.String(64), nullable=True),
    sa.Column("fw", sa.String(32), nullable=True),
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=True),
    sa.Column("door", sa.String(16), nullable=False),
    sa.Column("arrival", sa.BigInteger, nullable=False),
    sa.Index("ix_rejects_serial", "serial", "offset"),
)
_SERIAL, _CODE, _DOOR = 64, 32, 16  # the widths of those columns


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL; a refused record may carry one."""
    return value.replace("\x00", "\ufffd")


@dataclass(frozen=True)
class Reject:
    offset: int
    serial: str
    device_class: str | None
    fw: str | None
    code: str
    detail: str
    seq: int | None
    door: str
    arrival: int


@dataclass(frozen=True)
class RejectCount:
    device_class: str | None
    fw: str | None
    code: str
    count: int


class RejectLog(SqlDatabase):
    """The rejects table and the projection that fills it."""

    def __init__(
        self, url: str, dead_letter: Stream, registry: DeviceRegistry, state: DeviceStateStore
    ) -> None:
        super().__init__(url, metadata)
        self.dead_letter = dead_letter
        self.registry = registry
        self.state = state

    def run_once(self, limit: int = 1000) -> int:
        entries = self.dead_letter.read(self.dead_letter.position(CONSUMER), limit)
        if not entries:
            return 0
        serials = {e.headers.get("serial", "") for e in entries}
        states = self.state.many(serials)
        classes = {s: d.device_class for s in serials if (d := self.registry.find_device(s))}
        rows = []
        for e in entries:
            h = e.headers
            serial = h.get("serial", "")
            rows.append(
                {
                    "offset": e.offset,
                    "serial": _text(serial)[:_SERIAL],
                    "device_class": classes.get(serial),
                    "fw": states[serial].fw if serial in states else None,
                    "code": _text(h.get("code", "malformed"))[:_CODE],
                    "detail": _text(h.get("detail", "")),
                    "seq": int(h["seq"]) if "seq" in h else None,
                    "door": _text(h.get("door", ""))[:_DOOR],
                    "arrival": int(h.get("arrival", "0")),
                }
            )
        with self._tx() as conn:
            conn.execute(
                insert(conn, rejects).on_conflict_do_nothing(index_elements=[rejects.c.offset]),
                rows,
            )
        self.dead_letter.commit(CONSUMER, entries[-1].offset)
        return len(entries)

    def recent(self, serial: str, limit: int = 50) -> list[Reject]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(rejects)
                .where(rejects.c.serial == serial)
                .order_by(rejects.c.offset.desc())
                .limit(limit)
            ).all()
        return [Reject(**r._mapping) for r in rows]

    def latest(self, limit: int = 50) -> list[Reject]:
        """The newest rejects of every device, newest first."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(rejects).order_by(rejects.c.offset.desc()).limit(limit)
            ).all()
        return [Reject(**r._mapping) for r in rows]

    def counts(self, serial: str | None = None) -> list[RejectCount]:
        """Rejects per class, firmware version and code (of one device, or all)."""
        query = (
            sa.select(
                rejects.c.device_class, rejects.c.fw, rejects.c.code, sa.func.count().label("count")
            )
            .group_by(rejects.c.device_class, rejects.c.fw, rejects.c.code)
            .order_by(sa.func.count().desc())
        )
        if serial is not None:
            query = query.where(rejects.c.serial == serial)
        with self._read() as conn:
            return [RejectCount(*r) for r in conn.execute(query).all()]
