"""``tether firmware``: add, list, show, get and verify, and what they say when refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether.cli.main import app
from tether.errors import ConflictError, FirmwareError, ManifestRefusedError, NotFoundError

runner = CliRunner()

V1 = os.urandom(40_000)
V2 = V1[:30_000] + b"patched" * 50 + V1[30_000:]


def run(data_dir: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), *args], catch_exceptions=True)
    error = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.output, error


@pytest.fixture
def d(tmp_path: Path) -> Path:
    data = tmp_path / "t"
    assert run(data, "firmware", "key-init")[0] == 0
    (tmp_path / "v1.bin").write_bytes(V1)
    (tmp_path / "v2.bin").write_bytes(V2)
    return data


def add(d: Path, image: str, version: str, *extra: str) -> tuple[int, str, BaseException | None]:
    path = d.parent / image
    return run(d, "firmware", "add", str(path), "--class", "retail-cart", "--version", version,
               "--hw", "A", "--hw", "B", "--security-version", "2", *extra)  # fmt: skip


def test_add_list_show_get_and_verify(d: Path, tmp_path: Path) -> None:
    code, out, err = add(d, "v1.bin", "1.0.0", "--not-before", "2026-01-01")
    assert code == 0 and err is None, out
    assert "retail-cart firmware 1.0.0 stored" in out
    code, out, err = add(
        d, "v2.bin", "1.1.0", "--delta-from", "1.0.0", "--requires-trust", "sha256:" + "0" * 64
    )
    assert code == 0 and "delta from 1.0.0" in out, (out, err)

    code, out, _ = run(d, "firmware", "list", "--class", "retail-cart")
    assert code == 0 and "1.0.0" in out and "1.1.0" in out and "2 firmware versions" in out

    code, out, _ = run(d, "firmware", "show", "retail-cart", "1.0.0")
    shown = json.loads(out)
    assert shown["version"] == "1.0.0" and shown["hw"] == ["A", "B"]
    assert shown["not_before"] == 1_767_225_600 and "delta_from" not in shown
    code, out, _ = run(d, "firmware", "show", "retail-cart", "1.1.0", "--delta")
    assert json.loads(out)["delta_from"] == "1.0.0"

    envelope, full, patch = tmp_path / "m.json", tmp_path / "full.bin", tmp_path / "p.bin"
    assert (
        run(
            d,
            "firmware",
            "show",
            "retail-cart",
            "1.1.0",
            "--delta",
            "--signed",
            "-o",
            str(envelope),
        )[0]
        == 0
    )
    assert run(d, "firmware", "get", "retail-cart", "1.1.0", "-o", str(full))[0] == 0
    assert full.read_bytes() == V2
    assert run(d, "firmware", "get", "retail-cart", "1.1.0", "--delta", "-o", str(patch))[0] == 0

    # The delta's manifest: the patch applied to the base, judged as a device would.
    trust = "sha256:" + "0" * 64
    code, out, err = run(d, "firmware", "verify", str(patch), str(envelope), "--base",
                         str(tmp_path / "v1.bin"), "--hw", "B", "--trust", trust)  # fmt: skip
    assert code == 0 and "accepted" in out, (out, err)

    full_env = tmp_path / "full.json"
    run(d, "firmware", "show", "retail-cart", "1.0.0", "--signed", "-o", str(full_env))
    v1 = str(tmp_path / "v1.bin")
    for extra, reason in [
        (["--hw", "C"], "wrong_hw"),
        (["--hw", "A", "--security-version", "3"], "downgrade"),
        (["--hw", "A", "--at", "2025-12-31T23:59:59Z"], "not_yet_valid"),
        (["--hw", "A", "--at", "2030-01-01"], "expired"),
    ]:
        _, _, err = run(d, "firmware", "verify", v1, str(full_env), *extra)
        assert isinstance(err, ManifestRefusedError) and err.reason == reason, (extra, err)
    _, _, err = run(d, "firmware", "verify", str(full), str(full_env), "--hw", "A")
    assert isinstance(err, ManifestRefusedError) and err.reason == "size_mismatch"
    # Another platform's key is not this fleet's trust anchor.
    other = tmp_path / "other"
    run(other, "firmware", "key-init")
    anchor = tmp_path / "other.pem"
    run(other, "firmware", "key-export", "-o", str(anchor))
    _, _, err = run(
        d, "firmware", "verify", v1, str(full_env), "--hw", "A", "--anchor", str(anchor)
    )
    assert isinstance(err, ManifestRefusedError) and err.reason == "bad_signature"


def test_errors_say_what_to_do(tmp_path: Path, d: Path) -> None:
    _, _, err = run(tmp_path / "nokey", "firmware", "add", str(tmp_path / "v1.bin"), "-c",
                    "retail-cart", "-v", "1.0.0", "--hw", "A", "-s", "1")  # fmt: skip
    assert isinstance(err, NotFoundError) and "tether firmware key-init" in str(err)

    _, _, err = run(d, "firmware", "add", str(tmp_path / "v1.bin"), "-c", "toaster", "-v",
                    "1.0.0", "--hw", "A", "-s", "1")  # fmt: skip
    assert isinstance(err, NotFoundError) and "retail-cart" in str(err)
    _, _, err = add(d, "absent.bin", "1.0.0")
    assert isinstance(err, NotFoundError) and "no image file" in str(err)
    (tmp_path / "empty.bin").write_bytes(b"")
    _, _, err = add(d, "empty.bin", "1.0.0")
    assert isinstance(err, FirmwareError) and "empty" in str(err)
    _, _, err = add(d, "v1.bin", "one")
    assert isinstance(err, FirmwareError) and "MAJOR.MINOR.PATCH" in str(err)
    _, _, err = add(d, "v1.bin", "1.0.0", "--not-after", "next tuesday")
    assert isinstance(err, FirmwareError) and "--not-after" in str(err)
    _, _, err = add(d, "v1.bin", "1.0.0", "--delta-from", "0.1.0")
    assert isinstance(err, NotFoundError) and "0.1.0" in str(err)

    assert add(d, "v1.bin", "1.0.0")[0] == 0
    _, _, err = add(d, "v1.bin", "1.0.0")
    assert isinstance(err, ConflictError) and "1.0.0 is already in the catalog" in str(err)
    _, _, err = run(d, "firmware", "show", "retail-cart", "9.9.9")
    assert isinstance(err, NotFoundError) and "versions of retail-cart: 1.0.0" in str(err)
    _, _, err = run(d, "firmware", "show", "retail-cart", "1.0.0", "--delta")
    assert isinstance(err, NotFoundError) and "without a delta" in str(err)
    _, _, err = run(d, "firmware", "list", "--class", "toaster")
    assert isinstance(err, NotFoundError)
    (tmp_path / "junk.json").write_text("{")
    _, _, err = run(d, "firmware", "verify", str(tmp_path / "v1.bin"), str(tmp_path / "junk.json"),
                    "--hw", "A")  # fmt: skip
    assert isinstance(err, ManifestRefusedError) and err.reason == "malformed"


def test_the_main_entry_prints_the_error_and_exits_2(
    d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tether.cli import main

    monkeypatch.setattr("sys.argv", ["tether", "--data-dir", str(d), "firmware", "add",
                        str(tmp_path / "v1.bin"), "-c", "retail-cart", "-v", "bad",
                        "--hw", "A", "-s", "1"])  # fmt: skip
    with pytest.raises(SystemExit) as info:
        main.main()
    assert info.value.code == 2
    assert "is not a firmware version" in capsys.readouterr().err
