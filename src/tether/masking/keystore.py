"""Where key material lives: a key file or an environment variable, never the repo.

A key ring is a small YAML document::

    salts:
      - {version: 2026q1, valid_from: 2026-01-01, valid_until: 2026-04-01, secret: <hex>}
      - {version: 2026q2, valid_from: 2026-04-01, secret: <hex>}
    token_key: <hex>
    mapping_key: <hex>      # optional: only for the privacy officer's mapping table

``open_keyring`` takes ``file:PATH`` (or a bare path), ``env:VARIABLE`` (the same
document in an environment variable) or ``pkcs11:...`` (see ``keystore_pkcs11``).
A key file must be readable by its owner only and must not sit inside a git work
tree.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from tether.masking.errors import KeyMaterialError
from tether.masking.salts import KEY_BYTES, KeyRing, SaltVersion


def open_keyring(spec: str, environ: Mapping[str, str] | None = None) -> KeyRing:
    """Open the key ring named by ``spec`` (``file:``, ``env:`` or ``pkcs11:``)."""
    if spec.startswith("env:"):
        var = spec[4:]
        env = os.environ if environ is None else environ
        if var not in env:
            raise KeyMaterialError(f"environment variable {var} (named by --keys) is not set")
        return parse_keyring(env[var], origin=f"${var}")
    if spec.startswith("pkcs11:"):
        from tether.masking.keystore_pkcs11 import open_pkcs11_keyring

        return open_pkcs11_keyring(spec)
    path = Path(spec[5:] if spec.startswith("file:") else spec)
    check_key_file(path)
    return parse_keyring(path.read_text(encoding="utf-8"), origin=str(path))


def check_key_file(path: Path) -> None:
    """Refuse a key file that others can read or that lives in a git work tree."""
    try:
        st = path.stat()
    except OSError as exc:
        raise KeyMaterialError(
            f"cannot read key file {path}: {exc.strerror}; create one with "
            "`tether mask keys init PATH`"
        ) from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyMaterialError(f"key file {path} is readable by others; run: chmod 600 {path}")
    for parent in path.resolve().parents:
        if (parent / ".git").exists():
            raise KeyMaterialError(
                f"key file {path} is inside the git work tree {parent}; keep salts outside "
                "any repository"
            )


def parse_keyring(text: str, origin: str) -> KeyRing:
    """Parse a key ring document."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KeyMaterialError(f"{origin}: not valid YAML") from exc
    if not isinstance(doc, dict):
        raise KeyMaterialError(f"{origin}: expected a mapping with salts and token_key")
    raw_salts = doc.get("salts")
    if not isinstance(raw_salts, list) or not raw_salts:
        raise KeyMaterialError(f"{origin}: 'salts' must be a non-empty list")
    salts = tuple(_parse_salt(s, f"{origin}: salts[{i}]") for i, s in enumerate(raw_salts))
    mapping = doc.get("mapping_key")
    return KeyRing(
        salts=salts,
        token_key=_hex(doc.get("token_key"), f"{origin}: token_key"),
        mapping_key=None if mapping is None else _hex(mapping, f"{origin}: mapping_key"),
    )


def _parse_salt(raw: object, where: str) -> SaltVersion:
    if not isinstance(raw, dict):
        raise KeyMaterialError(f"{where}: expected version, valid_from, valid_until, secret")
    valid_from = _date(raw.get("valid_from"), f"{where}.valid_from")
    until = raw.get("valid_until")
    return SaltVersion(
        version=str(raw.get("version", "")),
        valid_from=valid_from,
        valid_until=None if until is None else _date(until, f"{where}.valid_until"),
        secret=_hex(raw.get("secret"), f"{where}.secret"),
    )


def _date(value: object, where: str) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise KeyMaterialError(f"{where}: expected a date YYYY-MM-DD, got {value!r}")


def _hex(value: object, where: str) -> bytes:
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    raise KeyMaterialError(f"{where}: expected hex digits")


def dump_keyring(ring: KeyRing) -> str:
    """Serialise a key ring (with its secrets) to YAML."""
    doc: dict[str, Any] = {
        "salts": [
            {
                "version": s.version,
                "valid_from": s.valid_from.isoformat(),
                "valid_until": s.valid_until.isoformat() if s.valid_until else None,
                "secret": s.secret.hex(),
            }
            for s in sorted(ring.salts, key=lambda s: s.valid_from)
        ],
        "token_key": ring.token_key.hex(),
    }
    if ring.mapping_key is not None:
        doc["mapping_key"] = ring.mapping_key.hex()
    return yaml.safe_dump(doc, sort_keys=False)


def write_key_file(path: Path, ring: KeyRing) -> None:
    """Write a key file readable by its owner only, replacing any older one atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(dump_keyring(ring))
    os.replace(tmp, path)


def new_keyring(version: str, valid_from: date) -> KeyRing:
    """A fresh key ring with one open-ended salt and new token and mapping keys."""
    salt = SaltVersion(version, valid_from, None, secrets.token_bytes(KEY_BYTES))
    return KeyRing((salt,), secrets.token_bytes(KEY_BYTES), secrets.token_bytes(KEY_BYTES))


def rotate(ring: KeyRing, version: str, valid_from: date) -> KeyRing:
    """Close the open salt at ``valid_from`` and open a new one from that day."""
    latest = max(ring.salts, key=lambda s: s.valid_from)
    if valid_from <= latest.valid_from:
        raise KeyMaterialError(
            f"the new salt must start after {latest.version} ({latest.valid_from.isoformat()})"
        )
    closed = SaltVersion(latest.version, latest.valid_from, valid_from, latest.secret)
    fresh = SaltVersion(version, valid_from, None, secrets.token_bytes(KEY_BYTES))
    kept = tuple(s for s in ring.salts if s is not latest)
    return KeyRing((*kept, closed, fresh), ring.token_key, ring.mapping_key)


def prune(ring: KeyRing, at: date) -> tuple[KeyRing, list[str]]:
    """Destroy salts whose overlap has ended by ``at``; returns the new ring and their names."""
    gone = [s.version for s in ring.salts if s.usable_until is not None and s.usable_until <= at]
    kept = tuple(s for s in ring.salts if s.version not in gone)
    if not kept:
        raise KeyMaterialError("pruning would leave no salt; rotate first")
    return KeyRing(kept, ring.token_key, ring.mapping_key), gone
