"""Schema migrations of the PostgreSQL databases: the entity store and the telemetry store.

Each database has its own Alembic script directory in this package
(``entity/``, ``telemetry/``) and its own version table
(``tether_entity_version``, ``tether_telemetry_version``), so the two stores may
live in two databases or share one. The configuration is built here: no
``alembic.ini`` is read at run time.

    from tether.store import migrations

    migrations.upgrade(migrations.ENTITY, "postgresql://tether@db/tether", report=print)

On PostgreSQL a store never changes its own schema: opening one checks the
database's revision (:func:`verify`) and raises
:class:`~tether.errors.MigrationRequiredError` until ``tether migrate`` has run.
SQLite stores keep creating and upgrading their schema themselves.

A new revision is a new file in ``<store>/versions/`` whose ``down_revision``
is the current head; write its DDL by hand (the tests compare the migrated
entity schema with the SQLAlchemy tables, so a forgotten column fails them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tether.errors import EngineError, MigrationRequiredError

if TYPE_CHECKING:
    import psycopg
    from alembic.script import ScriptDirectory

__all__ = [
    "ENTITY",
    "TARGETS",
    "TELEMETRY",
    "Outcome",
    "Target",
    "create_sqlite_entity_schema",
    "current",
    "entity_metadata",
    "head",
    "run_env",
    "upgrade",
    "verify",
]


@dataclass(frozen=True)
class Target:
    """One database tether migrates: its script directory, version table and lock."""

    name: str
    what: str
    version_table: str
    # pg_advisory_lock key held while migrating, so two `tether migrate` runs queue.
    lock_key: int

    @property
    def directory(self) -> Path:
        return Path(__file__).parent / self.name


ENTITY = Target("entity", "entity store", "tether_entity_version", 0x7465_7468_6572_0001)
TELEMETRY = Target(
    "telemetry", "telemetry store", "tether_telemetry_version", 0x7465_7468_6572_0002
)
TARGETS = (ENTITY, TELEMETRY)


@dataclass
class Outcome:
    """What :func:`upgrade` did: the revision before and after, and the steps applied."""

    before: str | None
    after: str
    applied: list[str] = field(default_factory=list)


@cache
def _scripts(target: Target) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(target.directory))


def head(target: Target) -> str:
    """The newest revision this tether knows for ``target``."""
    found = _scripts(target).get_current_head()
    if found is None:  # pragma: no cover - the package always ships a revision
        raise EngineError(f"tether ships no migrations for the {target.what}")
    return found


def _known(target: Target) -> set[str]:
    return {script.revision for script in _scripts(target).walk_revisions()}


def stored_revision(conn: psycopg.Connection[Any], target: Target) -> str | None:
    """The revision recorded in the database behind ``conn`` (None: no tether schema)."""
    from psycopg import errors as pgerrors

    try:
        with conn.transaction():
            row = conn.execute(f"SELECT version_num FROM {target.version_table}").fetchone()
    except pgerrors.UndefinedTable:
        return None
    return None if row is None else str(row[0])


def verify(target: Target, found: str | None, url: str) -> None:
    """Raise unless the database (at revision ``found``) is at this tether's head.

    :class:`MigrationRequiredError` when it is empty or behind (``tether migrate``
    fixes it), :class:`EngineError` when it is ahead (a newer tether migrated it).
    """
    from tether.store import postgres

    needed = head(target)
    if found == needed:
        return
    if found is not None and found not in _known(target):
        raise EngineError(
            f"the {target.what} at {postgres.shown(url)} is at schema revision {found}, "
            f"which this tether does not know (its newest is {needed}): a newer tether "
            "migrated it; upgrade tether"
        )
    raise MigrationRequiredError(target.what, postgres.shown(url), found, needed)


def current(target: Target, url: str) -> str | None:
    """The revision of the database ``url`` names; EngineError when it cannot be reached."""
    import psycopg

    from tether.store import postgres

    conn = postgres.connect(url, target.what)
    try:
        return stored_revision(conn, target)
    except psycopg.Error as exc:
        raise postgres.translate(exc, target.what, url) from exc
    finally:
        conn.close()


def upgrade(target: Target, url: str, report: Callable[[str], None] | None = None) -> Outcome:
    """Upgrade the database ``url`` names to ``head(target)``; idempotent.

    ``report`` hears one line per applied revision. Concurrent upgrades of the same
    database wait for each other (an advisory lock), so each revision runs once.
    """
    with _ALEMBIC:
        return _upgrade(target, url, report)


# Alembic's ``context`` and ``op`` are process-wide proxies: one upgrade at a time per
# process (other processes queue on the database's advisory lock).
_ALEMBIC = threading.Lock()


def _upgrade(target: Target, url: str, report: Callable[[str], None] | None) -> Outcome:
    from alembic import command
    from alembic.config import Config

    before = current(target, url)  # fails fast, and clearly, when the server is down
    if before is not None and before not in _known(target):
        verify(target, before, url)  # raises: a newer tether migrated this database
    outcome = Outcome(before, before or "")
    if report is not None and before != head(target):
        report(f"at {before or 'no schema'}, upgrading to {head(target)}")
    config = Config()
    config.set_main_option("script_location", str(target.directory))
    config.attributes.update(url=url, target=target, report=report, outcome=outcome)
    command.upgrade(config, "head")
    outcome.after = current(target, url) or ""
    return outcome


def entity_metadata() -> list[sa.MetaData]:
    """The SQLAlchemy tables of every adapter on the entity database."""
    import tether.accounts.sql  # noqa: F401  (its tables join the registry's MetaData)
    from tether.firmware import catalog
    from tether.projections import rejects, state
    from tether.registry.sql import metadata
    from tether.rollouts import store as rollouts

    return [metadata, state.metadata, rejects.metadata, catalog.metadata, rollouts.metadata]


def create_sqlite_entity_schema(url: str) -> None:
    """Create the entity tables in an SQLite database (what opening the adapters does)."""
    from tether.registry.sql import make_engine

    engine = make_engine(url)
    try:
        for tables in entity_metadata():
            tables.create_all(engine)
    except sa.exc.OperationalError as exc:
        raise EngineError(f"cannot open the entity store at {url!r}: {exc.orig}") from exc
    finally:
        engine.dispose()


def run_env() -> None:
    """The body of each script directory's ``env.py``: migrate online, under the lock."""
    from alembic import context
    from alembic.runtime.migration import MigrationContext, MigrationInfo

    from tether.store import postgres

    config = context.config
    url: str = config.attributes["url"]
    target: Target = config.attributes["target"]
    report: Callable[[str], None] | None = config.attributes.get("report")
    outcome: Outcome = config.attributes["outcome"]
    started = [time.monotonic()]

    def applied(
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: Collection[Any],
        run_args: Mapping[str, Any],
    ) -> None:
        del ctx, heads, run_args
        revision = step.up_revision_id or "?"
        script = _scripts(target).get_revision(revision) if step.up_revision_id else None
        doc = (script.doc or "").strip() if script is not None else ""
        outcome.applied.append(revision)
        if report is not None:
            took = time.monotonic() - started[0]
            report(f"applied {revision}: {doc} ({took:.2f} s)")
        started[0] = time.monotonic()

    engine = sa.create_engine(postgres.sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": target.lock_key})
            conn.commit()
            try:
                context.configure(
                    connection=conn,
                    version_table=target.version_table,
                    transaction_per_migration=True,
                    on_version_apply=applied,
                )
                with context.begin_transaction():
                    context.run_migrations()
            finally:
                conn.rollback()
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": target.lock_key})
                conn.commit()
    except sa.exc.OperationalError as exc:
        raise postgres.unreachable(target.what, url, exc.orig or exc) from None
    except sa.exc.DBAPIError as exc:
        raise EngineError(
            postgres.scrub(
                f"migrating the {target.what} at {postgres.shown(url)} failed: {exc.orig}", url
            )
        ) from None
    finally:
        engine.dispose()
