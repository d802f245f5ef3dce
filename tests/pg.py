"""PostgreSQL databases for tests: one migrated template per store, copied per test.

Migrating takes far longer than copying a database, so each session migrates one
template database per store (``template_entity``, ``template_telemetry``) on the
session's cluster and every test gets a file copy of it, dropped afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tether.store import migrations
from tether.store.migrations import Target
from tether.testing import PostgresInstance

_templates: dict[tuple[int, str], str] = {}


def migrated_template(pg: PostgresInstance, target: Target) -> str:
    """The name of this cluster's migrated template for ``target`` (made once)."""
    key = (pg.port, target.name)
    if key not in _templates:
        name = f"template_{target.name}"
        migrations.upgrade(target, pg.create_database(name))
        _templates[key] = name
    return _templates[key]


def database_name() -> str:
    return f"t_{uuid.uuid4().hex[:20]}"


@contextmanager
def fresh_database(pg: PostgresInstance, target: Target | None = None) -> Iterator[str]:
    """The URL of a new database (migrated for ``target`` when given), dropped afterwards."""
    name = database_name()
    template = migrated_template(pg, target) if target is not None else None
    url = pg.create_database(name, template=template)
    try:
        yield url
    finally:
        pg.drop_database(name)


# Entity stores: a data directory whose settings file names a PostgreSQL database.

#: The settings file tests' platforms read from their data directory (absent: defaults).
SETTINGS_FILE = "engines.toml"
ENTITY_ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.engine("postgres"))]


def point_entity_store(data_dir: Path, url: str) -> None:
    """Make platforms opened on ``data_dir`` keep their entity store at ``url``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / SETTINGS_FILE).write_text(f"entity_url = {json.dumps(url)}\n")


@contextmanager
def entity_data_dir(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Path]:
    """``data_dir`` for the engine ``request.param`` names: SQLite files, or a fresh database."""
    if request.param == "sqlite":
        yield data_dir
        return
    if request.param != "postgres":
        raise AssertionError(f"no fixture for entity engine {request.param!r}")
    with fresh_database(request.getfixturevalue("postgres"), migrations.ENTITY) as url:
        point_entity_store(data_dir, url)
        yield data_dir
