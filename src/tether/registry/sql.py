"""The registry on SQLAlchemy Core: SQLite by default, PostgreSQL in production.

``SqlDatabase`` is the plumbing every adapter on the entity database shares. On
SQLite it creates the tables it is given; on PostgreSQL the schema belongs to the
migrations (``tether migrate``, ``tether.store.migrations``) and opening checks
the database's revision instead. Other SQLAlchemy URLs get ``create_all``.

Driver errors are translated here into tether's error tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from tether.errors import ConflictError, EngineError, NotFoundError
from tether.registry.base import (
    CERT_CURRENT,
    CERT_REVOKED,
    CERT_SUPERSEDED,
    DEVICE_ACTIVE,
    DEVICE_REVOKED,
    CARecord,
    CertificateRecord,
    DeviceRecord,
    DeviceRegistry,
    Tenant,
)

metadata = sa.MetaData()

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("jit_enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

cas = sa.Table(
    "cas",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(64), sa.ForeignKey("tenants.name"), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("key_label", sa.String(256), nullable=True),
    sa.Column("cert_pem", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("trusted_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("serial", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), sa.ForeignKey("tenants.name"), nullable=False),
    sa.Column("device_class", sa.String(64), nullable=False),
    sa.Column("hw", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("not_after", sa.Float, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    sa.Column("revoke_reason", sa.Text, nullable=True),
    sa.Index("ix_devices_tenant", "tenant"),
)

certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("serial", sa.String(64), sa.ForeignKey("devices.serial"), nullable=False),
    sa.Column("serial_number", sa.String(40), nullable=False),
    sa.Column("ca_id", sa.Integer, sa.ForeignKey("cas.id"), nullable=False),
    sa.Column("not_after", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("pem", sa.Text, nullable=False),
    sa.Column("issued_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    sa.Index("ix_certificates_serial", "serial"),
    sa.Index("ix_certificates_ca_status", "ca_id", "status"),
    sa.Index("ix_certificates_status_not_after", "status", "not_after"),
)

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)


_DEVICE_BY_SERIAL = sa.select(devices).where(devices.c.serial == sa.bindparam("serial"))


def make_engine(url: str) -> Engine:
    """An SQLAlchemy engine for ``url``; SQLite gets WAL and a busy timeout.

    ``postgresql://`` URLs always use psycopg 3 (SQLAlchemy's own default driver
    for that scheme is psycopg2), with a connect timeout.
    """
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    try:
        if _is_postgres(url):
            from tether.store import postgres

            return sa.create_engine(
                postgres.sqlalchemy_url(url),
                pool_pre_ping=True,
                connect_args={"connect_timeout": postgres.CONNECT_TIMEOUT_S},
            )
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise EngineError(f"cannot open the entity store at {_shown(url)!r}: {exc}") from exc


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgresql+psycopg://"))


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def insert(conn: Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that takes ``on_conflict_do_nothing``/``_do_update`` (PostgreSQL, SQLite)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise EngineError(f"the entity store needs PostgreSQL or SQLite, not {conn.dialect.name}")


def _cert_row(cert: CertificateRecord) -> dict[str, Any]:
    row = asdict(cert)
    row["serial_number"] = format(cert.serial_number, "x")
    return row


def _cert(row: Any) -> CertificateRecord:
    data = dict(row._mapping)
    data["serial_number"] = int(data["serial_number"], 16)
    return CertificateRecord(**data)


def _add_new_columns(engine: sa.Engine, schema: sa.MetaData) -> None:
    """SQLite: give tables made by an older tether the nullable columns added since.

    PostgreSQL gets them from its Alembic revisions; an embedded database upgrades
    itself on opening. A new column must be nullable, so old rows stay valid.
    """
    inspector = sa.inspect(engine)
    with engine.begin() as conn:
        for table in schema.sorted_tables:
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                if not column.nullable:
                    raise EngineError(
                        f"the entity store at {engine.url} predates the column "
                        f"{table.name}.{column.name}, which cannot be added in place; "
                        "export the data and start a new data directory"
                    )
                kind = column.type.compile(dialect=engine.dialect)
                conn.exec_driver_sql(
                    f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}'
                )
            for index in table.indexes:
                index.create(conn, checkfirst=True)


class SqlDatabase:
    """An engine on the entity database, its tables, and driver errors translated.

    The adapters that keep their tables in the entity database (registry,
    accounts, device state, reject log) share this plumbing.
    """

    def __init__(self, url: str, schema: sa.MetaData) -> None:
        self.url = url
        self.engine = make_engine(url)
        try:
            if self.engine.dialect.name == "postgresql":
                self._check_revision()
            else:
                schema.create_all(self.engine)
                _add_new_columns(self.engine, schema)
        except sa.exc.OperationalError as exc:
            self.engine.dispose()
            if self.engine.dialect.name == "postgresql":
                from tether.store import postgres

                raise postgres.unreachable("entity store", url, exc.orig or exc) from None
            raise EngineError(f"cannot open the entity store at {url!r}: {exc.orig}") from exc
        except BaseException:
            self.engine.dispose()
            raise

    def _check_revision(self) -> None:
        """PostgreSQL: refuse a database ``tether migrate`` has not brought to this head."""
        from tether.store import migrations

        table = migrations.ENTITY.version_table
        with self.engine.connect() as conn:
            try:
                found = conn.execute(sa.text(f"SELECT version_num FROM {table}")).scalar()
            except sa.exc.ProgrammingError:
                found = None  # no version table: never migrated
        migrations.verify(migrations.ENTITY, None if found is None else str(found), self.url)

    def _failed(self, exc: sa.exc.DBAPIError) -> EngineError:
        text = str(exc.orig)
        password = sa.engine.make_url(self.url).password
        if password:
            text = text.replace(str(password), "***")
        return EngineError(f"the entity store at {_shown(self.url)} failed: {text}")

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A transaction, committed on success; driver errors become tether's."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.IntegrityError as exc:
            raise ConflictError(f"the entity store refused a duplicate: {exc.orig}") from exc
        except sa.exc.DBAPIError as exc:
            raise self._failed(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for reads only: no explicit transaction to commit."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        self.engine.dispose()


class SqlRegistry(SqlDatabase, DeviceRegistry):
    """The registry in any database SQLAlchemy speaks."""

    def __init__(self, url: str) -> None:
        super().__init__(url, metadata)

    def _bump(self, conn: Connection) -> None:
        # One statement, so two first bumps in two processes cannot both insert.
        conn.execute(
            insert(conn, counters)
            .values(name="generation", value=1)
            .on_conflict_do_update(
                index_elements=[counters.c.name], set_={"value": counters.c.value + 1}
            )
        )
        self._changed()

    # tenants
    def add_tenant(self, name: str, jit_enabled: bool, now: float) -> Tenant:
        with self._tx() as conn:
            if conn.execute(sa.select(tenants.c.name).where(tenants.c.name == name)).first():
                raise ConflictError(f"tenant {name!r} already exists")
            conn.execute(
                tenants.insert().values(name=name, jit_enabled=jit_enabled, created_at=now)
            )
        return Tenant(name, jit_enabled, now)

    def get_tenant(self, name: str) -> Tenant:
        with self._tx() as conn:
            row = conn.execute(sa.select(tenants).where(tenants.c.name == name)).first()
        if row is None:
            raise NotFoundError(
                f"no tenant named {name!r}; create it with: tether ca init --tenant {name}"
            )
        return Tenant(**row._mapping)

    def list_tenants(self) -> list[Tenant]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(tenants).order_by(tenants.c.name)).all()
        return [Tenant(**r._mapping) for r in rows]

    def set_jit(self, name: str, enabled: bool) -> None:
        self.get_tenant(name)
        with self._tx() as conn:
            conn.execute(tenants.update().where(tenants.c.name == name).values(jit_enabled=enabled))
            self._bump(conn)

    # certificate authorities
    def add_ca(
        self,
        tenant: str | None,
        kind: str,
        name: str,
        key_label: str | None,
        cert_pem: str,
        status: str,
        now: float,
    ) -> CARecord:
        values: dict[str, Any] = {
            "tenant": tenant,
            "kind": kind,
            "name": name,
            "key_label": key_label,
            "cert_pem": cert_pem,
            "status": status,
            "trusted_until": None,
            "created_at": now,
        }
        with self._tx() as conn:
            key = conn.execute(cas.insert().values(**values)).inserted_primary_key
            if key is None:
                raise EngineError("the entity store returned no id for a new CA")
            ca_id = key[0]
            self._bump(conn)
        return CARecord(id=int(ca_id), **values)

    def update_ca(self, ca_id: int, status: str, trusted_until: float | None) -> None:
        with self._tx() as conn:
            conn.execute(
                cas.update()
                .where(cas.c.id == ca_id)
                .values(status=status, trusted_until=trusted_until)
            )
            self._bump(conn)

    def list_cas(self, tenant: str | None = None, kind: str | None = None) -> list[CARecord]:
        query = sa.select(cas).order_by(cas.c.id)
        if tenant is not None:
            query = query.where(cas.c.tenant == tenant)
        if kind is not None:
            query = query.where(cas.c.kind == kind)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [CARecord(**r._mapping) for r in rows]

    # devices and certificates
    def add_devices(self, entries: Sequence[tuple[DeviceRecord, CertificateRecord]]) -> None:
        if not entries:
            return
        with self._tx() as conn:
            conn.execute(devices.insert(), [asdict(d) for d, _ in entries])
            conn.execute(certificates.insert(), [_cert_row(c) for _, c in entries])

    def find_device(self, serial: str) -> DeviceRecord | None:
        with self._read() as conn:
            row = conn.execute(_DEVICE_BY_SERIAL, {"serial": serial}).first()
        return None if row is None else DeviceRecord(**row._mapping)

    def get_device(self, serial: str) -> DeviceRecord:
        device = self.find_device(serial)
        if device is None:
            raise NotFoundError(f"no device with serial {serial!r} in the registry")
        return device

    def list_devices(self, tenant: str | None = None) -> list[DeviceRecord]:
        query = sa.select(devices).order_by(devices.c.serial)
        if tenant is not None:
            query = query.where(devices.c.tenant == tenant)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [DeviceRecord(**r._mapping) for r in rows]

    def count_devices(self, tenant: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(devices)
        if tenant is not None:
            query = query.where(devices.c.tenant == tenant)
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    def certificate(self, fingerprint: str) -> CertificateRecord | None:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(certificates).where(certificates.c.fingerprint == fingerprint)
            ).first()
        return None if row is None else _cert(row)

    def replace_certificate(self, cert: CertificateRecord, now: float) -> None:
        with self._tx() as conn:
            conn.execute(
                certificates.update()
                .where(certificates.c.serial == cert.serial)
                .where(certificates.c.status == CERT_CURRENT)
                .values(status=CERT_SUPERSEDED, revoked_at=now)
            )
            conn.execute(certificates.insert().values(**_cert_row(cert)))
            conn.execute(
                devices.update()
                .where(devices.c.serial == cert.serial)
                .values(fingerprint=cert.fingerprint, not_after=cert.not_after)
            )
            self._bump(conn)

    def revoke_device(self, serial: str, reason: str, now: float) -> DeviceRecord:
        device = self.get_device(serial)
        already = ConflictError(f"device {serial!r} is already revoked")
        if device.status == DEVICE_REVOKED:
            raise already
        with self._tx() as conn:
            changed = conn.execute(
                devices.update()
                .where(devices.c.serial == serial, devices.c.status != DEVICE_REVOKED)
                .values(status=DEVICE_REVOKED, revoked_at=now, revoke_reason=reason)
            )
            if changed.rowcount == 0:  # another process revoked it meanwhile
                raise already
            conn.execute(
                certificates.update()
                .where(certificates.c.serial == serial)
                .where(certificates.c.status == CERT_CURRENT)
                .values(status=CERT_REVOKED, revoked_at=now)
            )
            self._bump(conn)
        return self.get_device(serial)

    def withdrawn_certificates(self, ca_id: int) -> list[CertificateRecord]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(certificates)
                .where(certificates.c.ca_id == ca_id)
                .where(certificates.c.status.in_([CERT_REVOKED, CERT_SUPERSEDED]))
                .order_by(certificates.c.revoked_at)
            ).all()
        return [_cert(r) for r in rows]

    def expiring(self, before: float) -> list[CertificateRecord]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(certificates)
                .join(devices, devices.c.serial == certificates.c.serial)
                .where(certificates.c.status == CERT_CURRENT)
                .where(devices.c.status == DEVICE_ACTIVE)
                .where(certificates.c.not_after < before)
                .order_by(certificates.c.not_after)
            ).all()
        return [_cert(r) for r in rows]

    def revoked_serials(self, serials: Iterable[str] | None = None) -> set[str]:
        query = sa.select(devices.c.serial).where(devices.c.status == DEVICE_REVOKED)
        if serials is not None:
            query = query.where(devices.c.serial.in_(list(serials)))
        with self._tx() as conn:
            return {r[0] for r in conn.execute(query)}

    def generation(self) -> int:
        with self._read() as conn:
            value = conn.execute(
                sa.select(counters.c.value).where(counters.c.name == "generation")
            ).scalar()
        return int(value or 0)
