from __future__ import annotations

import subprocess
from pathlib import Path

from typer.testing import CliRunner

from tether.cli.main import app

runner = CliRunner()


def _run(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), *args], catch_exceptions=True)
    text = result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        text += repr(result.exception)
    return result.exit_code, text


def test_identity_commands_end_to_end(tmp_path: Path) -> None:
    d = tmp_path / "t"
    assert _run(d, "ca", "init", "--tenant", "acme")[0] == 0
    code, out = _run(
        d, "devices", "provision", "-t", "acme", "-c", "power-tool", "--hw", "A", "-n", "3"
    )
    assert code == 0 and "3 devices" in out
    code, out = _run(d, "devices", "list", "-t", "acme")
    assert code == 0 and "3 devices" in out

    chain, cert = tmp_path / "chain.pem", tmp_path / "device.pem"
    assert _run(d, "ca", "export", "-t", "acme", "-o", str(chain))[0] == 0
    full = [line.split("\t")[0] for line in _run(d, "devices", "list", "--plain")[1].splitlines()]
    assert len(full) == 3 and all(s.startswith("PT-") for s in full)
    assert _run(d, "devices", "export", full[0], "-o", str(cert))[0] == 0
    ok = subprocess.run(
        ["openssl", "verify", "-CAfile", str(chain), str(cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr

    assert _run(d, "devices", "renew", full[0])[0] == 0
    code, out = _run(d, "devices", "revoke", full[0], "--reason", "stolen")
    assert code == 0 and "revoked" in out
    assert "nothing expires" in _run(d, "certs", "expiring", "--within", "30d")[1]
    assert _run(d, "firmware", "key-init")[0] == 0
    code, out = _run(d, "firmware", "key-export")
    assert code == 0 and "BEGIN PUBLIC KEY" in out
    assert _run(d, "ca", "rotate", "-t", "acme", "--overlap", "7d")[0] == 0
    assert "retiring" in _run(d, "ca", "list")[1]
    crl = _run(d, "ca", "crl", "-t", "acme")[1]
    assert crl.count("BEGIN X509 CRL") == 2


def test_errors_are_reported_not_raised(tmp_path: Path) -> None:
    exe = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "tether"
    cmd = [str(exe)] if exe.exists() else ["tether"]
    res = subprocess.run(
        [*cmd, "--data-dir", str(tmp_path), "devices", "revoke", "NOPE"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 2
    assert "no device with serial 'NOPE'" in res.stderr
    res = subprocess.run(
        [*cmd, "--data-dir", str(tmp_path), "certs", "expiring", "--within", "soon"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 2 and "not a duration" in res.stderr
