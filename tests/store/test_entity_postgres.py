"""The entity store on PostgreSQL: the migrated schema is the adapters' tables; opening checks."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.pg import fresh_database
from tether.errors import EngineError, MigrationRequiredError
from tether.registry.sql import SqlRegistry, make_engine
from tether.store import migrations
from tether.testing import PostgresInstance, free_port


def test_the_migrated_schema_is_exactly_the_adapters_tables(postgres: PostgresInstance) -> None:
    tables = sa.MetaData()
    for metadata in migrations.entity_metadata():
        for table in metadata.tables.values():
            table.to_metadata(tables)
    with fresh_database(postgres, migrations.ENTITY) as url:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                context = MigrationContext.configure(
                    conn,
                    opts={
                        "version_table": migrations.ENTITY.version_table,
                        "compare_type": True,
                    },
                )
                assert compare_metadata(context, tables) == []
                partial = conn.execute(
                    sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ux_bonds_current'")
                ).scalar_one()
        finally:
            engine.dispose()
    assert "UNIQUE" in partial and "WHERE (ended_at IS NULL)" in partial


def test_an_unmigrated_entity_store_asks_for_tether_migrate(postgres: PostgresInstance) -> None:
    with fresh_database(postgres) as empty:
        with pytest.raises(MigrationRequiredError, match=r"entity store .* `tether migrate`"):
            SqlRegistry(empty)
        outcome = migrations.upgrade(migrations.ENTITY, empty)
        assert outcome.applied == ["0001", "0002", "0003", "0004"]
        SqlRegistry(empty).close()
        # postgresql+psycopg:// works as well.
        SqlRegistry("postgresql+psycopg" + empty.removeprefix("postgresql")).close()


def test_an_unreachable_entity_store_is_a_clear_error() -> None:
    url = f"postgresql://tether:s3cret@127.0.0.1:{free_port()}/tether"
    with pytest.raises(EngineError, match="cannot reach the entity store") as info:
        SqlRegistry(url)
    assert "s3cret" not in str(info.value) and "PostgreSQL is running" in str(info.value)


def test_first_generation_bumps_from_two_processes_do_not_collide(
    postgres: PostgresInstance,
) -> None:
    with fresh_database(postgres, migrations.ENTITY) as url:
        registries = [SqlRegistry(url) for _ in range(4)]
        registries[0].add_tenant("acme", False, 0.0)
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def bump(n: int) -> None:
            start.wait()
            try:
                for _ in range(5):
                    registries[n].set_jit("acme", n % 2 == 0)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=bump, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            assert not errors
            assert registries[0].generation() == 20
        finally:
            for r in registries:
                r.close()
