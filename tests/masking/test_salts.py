from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pytest

from tether.masking.errors import KeyMaterialError, SaltRetiredError
from tether.masking.keystore import (
    dump_keyring,
    new_keyring,
    open_keyring,
    prune,
    rotate,
    write_key_file,
)
from tether.masking.salts import OVERLAP, KeyRing, SaltVersion


def test_current_salt_follows_the_windows(ring: KeyRing) -> None:
    assert ring.current_salt(date(2026, 3, 31)).version == "2026q1"
    assert ring.current_salt(date(2026, 4, 1)).version == "2026q2"
    with pytest.raises(KeyMaterialError, match="no salt is valid on 2025-12-31"):
        ring.current_salt(date(2025, 12, 31))


def test_previous_salt_usable_for_thirty_days_and_never_after(ring: KeyRing) -> None:
    end = date(2026, 4, 1)
    assert timedelta(days=30) == OVERLAP
    assert ring.select(end + timedelta(days=29), "2026q1").version == "2026q1"
    with pytest.raises(SaltRetiredError, match="retired on 2026-05-01"):
        ring.select(end + timedelta(days=30), "2026q1")
    with pytest.raises(KeyMaterialError, match="only becomes valid"):
        ring.select(date(2026, 3, 1), "2026q2")
    with pytest.raises(KeyMaterialError, match="known: 2026q1, 2026q2"):
        ring.select(end, "2025q4")


def test_key_ring_validation() -> None:
    with pytest.raises(KeyMaterialError, match="overlapping validity windows"):
        KeyRing(
            (
                SaltVersion("a", date(2026, 1, 1), None, b"x" * 16),
                SaltVersion("b", date(2026, 4, 1), None, b"y" * 16),
            ),
            b"t" * 32,
        )
    with pytest.raises(KeyMaterialError, match="at least 16"):
        SaltVersion("a", date(2026, 1, 1), None, b"short")
    with pytest.raises(KeyMaterialError, match="token_key"):
        KeyRing((SaltVersion("a", date(2026, 1, 1), None, b"x" * 16),), b"t")


def test_key_file_round_trip_rotate_and_prune(tmp_path: Path) -> None:
    path = tmp_path / "mask-keys.yaml"
    write_key_file(path, new_keyring("2026q1", date(2026, 1, 1)))
    assert os.stat(path).st_mode & 0o777 == 0o600
    ring = rotate(open_keyring(f"file:{path}"), "2026q2", date(2026, 4, 1))
    write_key_file(path, ring)
    again = open_keyring(str(path))
    assert [s.version for s in again.salts] == ["2026q1", "2026q2"]
    assert again.salts[0].valid_until == date(2026, 4, 1)
    with pytest.raises(KeyMaterialError, match="must start after 2026q2"):
        rotate(again, "2026q3", date(2026, 3, 1))
    kept, gone = prune(again, date(2026, 4, 30))
    assert gone == []
    kept, gone = prune(again, date(2026, 5, 1))
    assert gone == ["2026q1"] and [s.version for s in kept.salts] == ["2026q2"]


def test_key_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    write_key_file(path, new_keyring("v1", date(2026, 1, 1)))
    path.chmod(0o644)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        open_keyring(str(path))


def test_key_file_must_not_live_in_a_repository(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    path = tmp_path / "conf" / "keys.yaml"
    path.parent.mkdir()
    write_key_file(path, new_keyring("v1", date(2026, 1, 1)))
    with pytest.raises(KeyMaterialError, match="outside any repository"):
        open_keyring(str(path))


def test_key_ring_from_environment(ring: KeyRing) -> None:
    env = {"MASK_KEYS": dump_keyring(ring)}
    assert open_keyring("env:MASK_KEYS", environ=env) == ring
    with pytest.raises(KeyMaterialError, match="MASK_KEYS"):
        open_keyring("env:MASK_KEYS", environ={})
    with pytest.raises(KeyMaterialError, match="expected hex"):
        open_keyring(
            "env:K",
            environ={
                "K": "salts: [{version: a, valid_from: 2026-01-01, secret: zz}]\ntoken_key: 00"
            },
        )
