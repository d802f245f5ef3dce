"""Device state from accepted events: firmware, capabilities in use, ring buffer, last seen.

Applying the same events twice, or out of order, ends in the same state: a
``hello`` or ``boot`` replaces the stored one only if its seq is newer, and last
seen only moves forward.

``apply`` reads the devices' rows inside its transaction, locked (``FOR UPDATE``
on PostgreSQL, in serial order; SQLite's write lock, taken first), and inserts
new devices with ``ON CONFLICT DO NOTHING``; when another process inserted one
first, the batch is folded again. So concurrent projectors never lose an update.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from tether.classes.catalog import ClassRuntime
from tether.errors import ConflictError
from tether.gate.submission import AcceptedEvent
from tether.registry.sql import SqlDatabase, insert

metadata = sa.MetaData()
device_state = sa.Table(
    "device_state",
    metadata,
    sa.Column("serial", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("fw", sa.String(32), nullable=True),
    sa.Column("hw", sa.String(32), nullable=True),
    sa.Column("announced", sa.Text, nullable=False, default="[]"),
    sa.Column("agreed", sa.Text, nullable=False, default="[]"),
    sa.Column("lowest_seq_held", sa.BigInteger, nullable=True),
    sa.Column("hello_seq", sa.BigInteger, nullable=True),
    sa.Column("boot_seq", sa.BigInteger, nullable=True),
    sa.Column("last_seen", sa.BigInteger, nullable=False),
    sa.Column("device_class", sa.String(64), nullable=True),
    sa.Column("site", sa.String(64), nullable=True),
    sa.Column("trust_anchors", sa.Text, nullable=True),  # JSON list from the newest hello
    sa.Index("ix_device_state_seen", "tenant", "last_seen"),
)


@dataclass(frozen=True)
class DeviceState:
    serial: str
    tenant: str
    fw: str | None
    hw: str | None
    announced: list[str]
    agreed: list[str]
    lowest_seq_held: int | None
    hello_seq: int | None
    boot_seq: int | None
    last_seen: int
    device_class: str | None = None
    site: str | None = None  # the last site the device's records named (its class's site field)
    trust_anchors: list[str] | None = None  # as its newest hello listed them (None: not told)


def agreed_capabilities(runtime: ClassRuntime, announced: Iterable[object]) -> list[str]:
    """What both sides understand: the device's announcement meets the class's list.

    Capabilities the platform does not know are ignored, never an error.
    """
    known = set(runtime.pack.capabilities)
    return sorted({c for c in announced if isinstance(c, str) and c in known})


def _newer(seq: int | None, stored: int | None) -> bool:
    return seq is not None and (stored is None or seq > stored)


class DeviceStateStore(SqlDatabase):
    """Per-device state in the entity database."""

    def __init__(self, url: str) -> None:
        super().__init__(url, metadata)

    def get(self, serial: str) -> DeviceState | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(device_state).where(device_state.c.serial == serial)
            ).first()
        return None if row is None else _state(row)

    def many(self, serials: Iterable[str]) -> dict[str, DeviceState]:
        wanted = list(serials)
        if not wanted:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                sa.select(device_state).where(device_state.c.serial.in_(wanted))
            ).all()
        return {r.serial: _state(r) for r in rows}

    def presence(self, since_ms: int) -> list[tuple[str | None, str | None, int, int]]:
        """Per class and site: devices that landed anything since ``since_ms``, and all seen."""
        c = device_state.c
        online = sa.func.sum(sa.case((c.last_seen >= since_ms, 1), else_=0))
        query = (
            sa.select(c.device_class, c.site, online, sa.func.count())
            .group_by(c.device_class, c.site)
            .order_by(c.device_class, c.site)
        )
        with self._read() as conn:
            return [(r[0], r[1], int(r[2] or 0), int(r[3])) for r in conn.execute(query)]

    def lowest_held(self) -> dict[str, int | None]:
        """Every device's ``lowest_seq_held`` from its newest hello (None before one)."""
        c = device_state.c
        with self._read() as conn:
            return {r[0]: r[1] for r in conn.execute(sa.select(c.serial, c.lowest_seq_held))}

    def apply(self, events: Sequence[AcceptedEvent], runtimes: dict[str, ClassRuntime]) -> None:
        """Fold accepted events into the state of their devices, in one transaction."""
        if not events:
            return
        for _ in range(_APPLY_ATTEMPTS):
            try:
                self._apply(events, runtimes)
                return
            except _Raced:
                continue
        raise ConflictError(
            f"device state: {_APPLY_ATTEMPTS} attempts lost the race for new devices to other "
            "writers; apply the batch again"
        )

    def _apply(self, events: Sequence[AcceptedEvent], runtimes: dict[str, ClassRuntime]) -> None:
        serials = sorted({e.serial for e in events})
        with self._tx() as conn:
            if conn.dialect.name == "sqlite":
                # The write lock before the read: no other writer between the two.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            rows = conn.execute(
                sa.select(device_state)
                .where(device_state.c.serial.in_(serials))
                .order_by(device_state.c.serial)
                .with_for_update()
            ).all()
            stored = {r.serial: _state(r) for r in rows}
            current = dict(stored)
            for event in events:
                current[event.serial] = _fold(
                    current.get(event.serial), event, runtimes.get(event.device_class)
                )
            for serial in serials:
                old, new = stored.get(serial), current[serial]
                if old is None:
                    made = conn.execute(
                        insert(conn, device_state)
                        .values(**_row(new))
                        .on_conflict_do_nothing(index_elements=[device_state.c.serial])
                    )
                    if made.rowcount == 0:
                        raise _Raced()  # rolls back; the next attempt locks the new row
                elif new != old:
                    conn.execute(
                        device_state.update()
                        .where(device_state.c.serial == serial)
                        .values(**_row(new))
                    )


_APPLY_ATTEMPTS = 5


class _Raced(Exception):
    """Internal: another writer inserted a device this batch meant to insert."""


def _fold(old: DeviceState | None, e: AcceptedEvent, runtime: ClassRuntime | None) -> DeviceState:
    state = old or DeviceState(e.serial, e.tenant, None, None, [], [], None, None, None, 0)
    changes: dict[str, object] = {
        "last_seen": max(state.last_seen, e.arrival),
        "device_class": e.device_class,
    }
    site_field = runtime.pack.site_field if runtime else None
    site = e.body.get(site_field) if site_field else None
    if isinstance(site, str) and e.arrival >= state.last_seen:
        changes["site"] = site[:64]
    if e.type == "hello" and _newer(e.seq, state.hello_seq):
        announced = [c for c in e.body.get("capabilities", []) if isinstance(c, str)]
        changes.update(
            hello_seq=e.seq,
            fw=e.body.get("fw", state.fw),
            hw=e.body.get("hw", state.hw),
            announced=announced,
            agreed=agreed_capabilities(runtime, announced) if runtime else [],
            lowest_seq_held=e.body.get("lowest_seq_held", state.lowest_seq_held),
            trust_anchors=_anchors(e.body.get("trust_anchors")),
        )
    elif e.type == "boot" and _newer(e.seq, state.boot_seq) and _newer(e.seq, state.hello_seq):
        changes.update(boot_seq=e.seq, fw=e.body.get("fw", state.fw))
    return DeviceState(**{**state.__dict__, **changes})


def _anchors(listed: object) -> list[str] | None:
    if not isinstance(listed, list):
        return None
    return sorted({a for a in listed if isinstance(a, str)})


def _row(state: DeviceState) -> dict[str, object]:
    row = dict(state.__dict__)
    for name in ("fw", "hw", "site"):  # from the device: PostgreSQL text cannot hold NUL
        if isinstance(row[name], str) and "\x00" in row[name]:
            row[name] = row[name].replace("\x00", "\ufffd")
    row["announced"] = json.dumps(state.announced)
    row["agreed"] = json.dumps(state.agreed)
    if state.trust_anchors is not None:
        row["trust_anchors"] = json.dumps(state.trust_anchors)
    return row


def _state(row: sa.Row[tuple[object, ...]]) -> DeviceState:
    data = dict(row._mapping)
    data["announced"] = json.loads(str(data["announced"]))
    data["agreed"] = json.loads(str(data["agreed"]))
    if data.get("trust_anchors") is not None:
        data["trust_anchors"] = json.loads(str(data["trust_anchors"]))
    return DeviceState(**data)
