"""Fixtures for the accounts tests: a platform with two tenants and a few brushes.

``fleet`` runs once with the entity store in SQLite and once in PostgreSQL. Each
engine's fleet is provisioned once per session and copied for every test: the
data directory, and on PostgreSQL the database too (a copy of the template's).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.identity.conftest import Clock, open_platform
from tests.pg import (
    ENTITY_ENGINES,
    database_name,
    migrated_template,
    point_entity_store,
)
from tether.platform import Platform
from tether.store import migrations
from tether.testing import PostgresInstance

OPERATOR_TOKEN = "operator-secret"


@dataclass
class Fleet:
    platform: Platform
    clock: Clock
    data_dir: Path
    acme: list[str]  # serials of tenant acme
    globex: list[str]  # serials of tenant globex


def make_fleet(data_dir: Path, clock: Clock, **overrides: object) -> Fleet:
    p = open_platform(data_dir, clock, admin_token=OPERATOR_TOKEN, **overrides)
    serials: dict[str, list[str]] = {}
    for tenant, count in (("acme", 3), ("globex", 1)):
        p.authority.init_tenant(tenant)
        made = p.provisioner.provision(p.secure_elements, tenant, "oral-care-brush", "B", count)
        serials[tenant] = sorted(d.serial for d in made)
    return Fleet(p, clock, data_dir, serials["acme"], serials["globex"])


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000.0)


@dataclass(frozen=True)
class Template:
    data_dir: Path
    acme: list[str]
    globex: list[str]
    database: str | None = None  # PostgreSQL: the provisioned database to copy


@pytest.fixture(scope="session")
def fleet_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """One provisioned data directory (SQLite), made once and copied for each test."""
    made = make_fleet(tmp_path_factory.mktemp("accounts") / "tether", Clock())
    made.platform.close()
    return Template(made.data_dir, made.acme, made.globex)


@pytest.fixture(scope="session")
def pg_fleet_template(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresInstance
) -> Template:
    """The same on PostgreSQL: a provisioned database, copied for each test."""
    name = database_name()
    url = postgres.create_database(name, template=migrated_template(postgres, migrations.ENTITY))
    data_dir = tmp_path_factory.mktemp("accounts-pg") / "tether"
    point_entity_store(data_dir, url)
    made = make_fleet(data_dir, Clock())
    made.platform.close()
    return Template(made.data_dir, made.acme, made.globex, name)


@pytest.fixture(params=ENTITY_ENGINES)
def fleet(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Fleet]:
    data_dir = tmp_path / "tether"
    postgres: PostgresInstance | None = None
    copy: str | None = None
    if request.param == "sqlite":
        template: Template = request.getfixturevalue("fleet_template")
        shutil.copytree(template.data_dir, data_dir)
    else:
        template = request.getfixturevalue("pg_fleet_template")
        postgres = request.getfixturevalue("postgres")
        shutil.copytree(template.data_dir, data_dir)
        copy = database_name()
        point_entity_store(data_dir, postgres.create_database(copy, template=template.database))
    p = open_platform(data_dir, clock, admin_token=OPERATOR_TOKEN)
    f = Fleet(p, clock, data_dir, template.acme, template.globex)
    yield f
    p.close()
    if postgres is not None and copy is not None:
        postgres.drop_database(copy)
