"""``tether migrate``: both databases to head, idempotent, with progress; clear when down."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.pg import database_name
from tether.cli.main import app
from tether.errors import MigrationRequiredError
from tether.platform import Platform
from tether.settings import load_settings
from tether.store.telemetry import open_telemetry_store
from tether.testing import PostgresInstance, free_port

runner = CliRunner()


@pytest.fixture
def empty_databases(postgres: PostgresInstance) -> Iterator[dict[str, str]]:
    """Two empty databases, for the entity and the telemetry store."""
    names = [database_name(), database_name()]
    urls = [postgres.create_database(name) for name in names]
    yield {"TETHER_ENTITY_URL": urls[0], "TETHER_TELEMETRY_URL": urls[1]}
    for name in names:
        postgres.drop_database(name)


def migrate(data_dir: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), "migrate", *args], env=env)
    text = result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        text += repr(result.exception)
    return result.exit_code, text


def test_migrate_from_empty_then_again_changes_nothing(
    tmp_path: Path, empty_databases: dict[str, str]
) -> None:
    env = empty_databases
    settings = load_settings({"data_dir": str(tmp_path)}, environ=env)
    with pytest.raises(MigrationRequiredError, match="tether migrate"):
        Platform.open(settings)
    with pytest.raises(MigrationRequiredError, match="tether migrate"):
        open_telemetry_store(env["TETHER_TELEMETRY_URL"])

    code, out = migrate(tmp_path, env, "--check")
    assert code == 1 and out.count("run `tether migrate`") == 2

    code, out = migrate(tmp_path, env)
    assert code == 0, out
    assert "entity store postgresql://" in out and "telemetry store postgresql://" in out
    assert "applied 0001: registry, accounts, device state and reject log" in out
    assert "applied 0001: time-partitioned telemetry" in out
    assert out.count("upgraded") == 2
    assert "partitions: 9 days" in out

    code, again = migrate(tmp_path, env)
    assert code == 0 and "applied" not in again and again.count("nothing to do") == 2
    assert migrate(tmp_path, env, "--check")[0] == 0

    p = Platform.open(settings)
    try:
        p.authority.init_tenant("acme")
        assert p.registry.list_tenants()[0].name == "acme"
        assert p.telemetry.count() == 0
    finally:
        p.close()


def test_one_database_can_hold_both_stores(tmp_path: Path, empty_databases: dict[str, str]) -> None:
    shared = empty_databases["TETHER_ENTITY_URL"]
    env = {"TETHER_ENTITY_URL": shared, "TETHER_TELEMETRY_URL": shared}
    code, out = migrate(tmp_path, env)
    assert code == 0 and out.count("upgraded") == 2, out
    p = Platform.open(load_settings({"data_dir": str(tmp_path)}, environ=env))
    p.close()


def test_sqlite_stores_need_nothing_but_are_made(tmp_path: Path) -> None:
    code, out = migrate(tmp_path, {})
    assert code == 0 and out.count("SQLite: tether keeps this schema itself") == 2
    assert (tmp_path / "entity.sqlite").exists() and (tmp_path / "telemetry.sqlite").exists()


def test_a_server_that_is_down_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://tether:s3cret@127.0.0.1:{free_port()}/tether"
    env = {**os.environ, "TETHER_ENTITY_URL": url, "TETHER_TELEMETRY_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "tether.cli.main", "--data-dir", str(tmp_path), "migrate"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "cannot reach the entity store at postgresql://tether:***@127.0.0.1" in message
    assert "check that PostgreSQL is running" in message
    assert "s3cret" not in done.stdout + done.stderr
