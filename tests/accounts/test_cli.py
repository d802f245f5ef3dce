"""``tether accounts``."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from tests.accounts.conftest import Fleet
from tests.pg import SETTINGS_FILE
from tether.cli.main import app

runner = CliRunner()


def _run(data_dir: Path, *args: str) -> tuple[int, str]:
    # The data directory's settings file names the entity store when it is not SQLite.
    config = ["--config", str(data_dir / SETTINGS_FILE)]
    result = runner.invoke(
        app, ["--data-dir", str(data_dir), *config, *args], catch_exceptions=True
    )
    text = result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        text += repr(result.exception)
    return result.exit_code, text


def _create(data_dir: Path, tenant: str = "acme") -> tuple[str, str]:
    code, out = _run(data_dir, "accounts", "create", "--tenant", tenant)
    assert code == 0, out
    account = re.search(r"^account (acc_\w{16})$", out, re.M)
    token = re.search(r"^token +(\S+)$", out, re.M)
    assert account and token, out
    return account.group(1), token.group(1)


def test_create_prints_the_account_and_its_token_once(fleet: Fleet) -> None:
    account, token = _create(fleet.data_dir)
    assert fleet.platform.accounts.authenticate(token).id == account
    code, out = _run(fleet.data_dir, "accounts", "show", account)
    assert code == 0 and account in out and "acme" in out and "owns no devices" in out
    assert token not in out

    code, fresh = _run(fleet.data_dir, "accounts", "token", account)
    assert code == 0 and fleet.platform.accounts.authenticate(fresh.strip()).id == account
    assert _run(fleet.data_dir, "accounts", "revoke-token", token)[0] == 0
    assert "AuthenticationError" in _run(fleet.data_dir, "accounts", "revoke-token", token)[1]


def test_bond_refuses_a_device_that_has_an_owner_unless_forced_with_a_reason(
    fleet: Fleet,
) -> None:
    d, serial = fleet.data_dir, fleet.acme[0]
    shop, _ = _create(d)
    other, _ = _create(d)
    code, out = _run(d, "accounts", "bond", serial, shop)
    assert code == 0 and f"{serial} is bonded to {shop}" in out
    code, out = _run(d, "accounts", "show", shop)
    assert code == 0 and serial in out and "1 device" in out

    code, out = _run(d, "accounts", "bond", serial, other)
    assert code != 0 and "ConflictError" in out and "--force" in out
    code, out = _run(d, "accounts", "bond", serial, other, "--force")
    assert code == 2 and "--reason" in out
    code, out = _run(d, "accounts", "bond", serial, other, "--force", "--reason", "RMA 7")
    assert code == 0, out
    assert fleet.platform.accounts.owner(serial) == other

    code, out = _run(d, "accounts", "audit", "--serial", serial)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert "bond.replaced" in lines[0] and "RMA 7" in lines[0] and "operator:" in lines[0]
    assert "bond.assigned" in lines[1]
    code, out = _run(d, "accounts", "audit", "--account", shop)
    assert code == 0 and "account.created" in out and "token.issued" in out


def test_cross_tenant_bonds_and_unknown_accounts_are_reported(fleet: Fleet) -> None:
    account, _ = _create(fleet.data_dir)
    code, out = _run(fleet.data_dir, "accounts", "bond", fleet.globex[0], account)
    assert code != 0 and "NotFoundError" in out
    code, out = _run(fleet.data_dir, "accounts", "show", "acc_nobody")
    assert code != 0 and "NotFoundError" in out
    code, out = _run(fleet.data_dir, "accounts", "create", "--tenant", "initech")
    assert code != 0 and "tether ca init" in out
