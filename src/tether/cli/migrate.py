"""``tether migrate``: bring the entity and telemetry databases to this tether's schema.

PostgreSQL databases are upgraded by their Alembic revisions (``tether.store.migrations``);
a store on PostgreSQL refuses to open until this has run. SQLite stores keep their
schema themselves: for them this command only opens them, which creates or upgrades it.
It never opens the platform (which would refuse an unmigrated database).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from tether.cli.context import console, settings_from
from tether.errors import MigrationRequiredError
from tether.store import migrations
from tether.store.migrations import Target


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgresql+psycopg://"))


def _day(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def _partitions(url: str) -> str:
    from tether.store.telemetry.postgres import PostgresTelemetryStore

    store = PostgresTelemetryStore(url)  # makes the partitions ahead
    try:
        parts = store.partitions()
    finally:
        store.close()
    days = sorted(p.day for p in parts if p.day is not None)
    outer = len(parts) - len(days)
    if not days:
        return f"partitions: no day partitions yet (+{outer} outer)"
    return f"partitions: {len(days)} days, {_day(days[0])} to {_day(days[-1])} (+{outer} outer)"


def _sqlite(target: Target, url: str) -> None:
    if target is migrations.TELEMETRY:
        from tether.store.telemetry import open_telemetry_store

        open_telemetry_store(url).close()
    else:
        migrations.create_sqlite_entity_schema(url)
    console.print("  SQLite: tether keeps this schema itself; it is created and current")


def _one(target: Target, url: str, check: bool) -> bool:
    """Migrate (or with ``check``, inspect) one database; True when it is at head."""
    from tether.store.postgres import shown

    console.print(f"[bold]{target.what}[/] {shown(url)}")
    if not _is_postgres(url):
        if not check:
            _sqlite(target, url)
        else:
            console.print("  SQLite: tether keeps this schema itself")
        return True
    head = migrations.head(target)
    if check:
        found = migrations.current(target, url)
        try:
            migrations.verify(target, found, url)
        except MigrationRequiredError:
            console.print(f"  at {found or 'no schema'}, needs {head}: run `tether migrate`")
            return False
        console.print(f"  at {head}: up to date")
        return True
    outcome = migrations.upgrade(target, url, report=lambda line: console.print(f"  {line}"))
    if outcome.applied:
        console.print(f"  {outcome.before or 'empty'} → {outcome.after}: upgraded")
    else:
        console.print(f"  at {outcome.after}: up to date, nothing to do")
    if target is migrations.TELEMETRY:
        console.print(f"  {_partitions(url)}")
    return True


def migrate(
    ctx: typer.Context,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Change nothing: report each database's revision; exit 1 if behind."
        ),
    ] = False,
) -> None:
    """Upgrade the entity and telemetry databases to this tether's schema (idempotent).

    Run it after installing or upgrading tether when a store is on PostgreSQL:
    a PostgreSQL store refuses to open until its database is migrated. Concurrent
    runs wait for each other.
    """
    settings = settings_from(ctx)
    current = [
        _one(migrations.ENTITY, settings.resolved_entity_url(), check),
        _one(migrations.TELEMETRY, settings.resolved_telemetry_url(), check),
    ]
    if not all(current):
        raise typer.Exit(1)
