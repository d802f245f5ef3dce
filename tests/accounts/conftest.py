"""Fixtures for the accounts tests: a platform with two tenants and a few brushes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.identity.conftest import Clock, open_platform
from tether.platform import Platform

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


@pytest.fixture(scope="session")
def fleet_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[str]]:
    """One provisioned data directory, made once and copied for each test."""
    made = make_fleet(tmp_path_factory.mktemp("accounts") / "tether", Clock())
    made.platform.close()
    return made.data_dir, made.acme, made.globex


@pytest.fixture
def fleet(
    tmp_path: Path, clock: Clock, fleet_template: tuple[Path, list[str], list[str]]
) -> Iterator[Fleet]:
    template, acme, globex = fleet_template
    data_dir = tmp_path / "tether"
    shutil.copytree(template, data_dir)
    p = open_platform(data_dir, clock, admin_token=OPERATOR_TOKEN)
    f = Fleet(p, clock, data_dir, acme, globex)
    yield f
    p.close()
