"""The privacy officer's mapping table: token -> original value, encrypted, kept apart.

Optional (``tether mask run --mapping-out``). The table is AES-256-GCM encrypted
under the key ring's ``mapping_key``, bound to its domain, and refused inside the
output directory: whoever reads the masked data must not find the way back next
to it. ``tether mask lookup`` decrypts one token for the officer.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tether.masking.errors import KeyMaterialError, OutputError
from tether.masking.rubric import Bucket, Rubric
from tether.masking.salts import KeyRing
from tether.masking.sources import Source
from tether.masking.tokens import tokenise

MAGIC = b"TMAP1\n"


def _aad(domain: str) -> bytes:
    return b"tether-mask-mapping:" + domain.encode()


def write_mapping(
    path: Path, source: Source, rubric: Rubric, keys: KeyRing, domain: str, out_dir: Path
) -> int:
    """Write the encrypted table for the source's quasi-identifiers; returns its size."""
    if keys.mapping_key is None:
        raise KeyMaterialError("the key ring has no mapping_key; add one or drop --mapping-out")
    if path.resolve().is_relative_to(out_dir.resolve()):
        raise OutputError(f"{path} is inside the output {out_dir}; store the mapping table apart")
    import polars as pl

    frame = source.scan()
    names = frame.collect_schema().names()
    entries: list[list[str]] = []
    for rule in rubric.by_bucket(Bucket.QUASI):
        if rule.name not in names:
            continue
        values = frame.select(pl.col(rule.name).cast(pl.String)).unique().collect().to_series()
        for v in values.drop_nulls().to_list():
            entries.append([rule.name, tokenise(keys.token_key, domain, v), v])
    body = json.dumps({"domain": domain, "entries": entries}).encode()
    nonce = secrets.token_bytes(12)
    blob = MAGIC + nonce + AESGCM(keys.mapping_key).encrypt(nonce, body, _aad(domain))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(blob)
    return len(entries)


def lookup(path: Path, keys: KeyRing, domain: str, token: str) -> list[tuple[str, str]]:
    """The (column, value) pairs behind ``token``."""
    if keys.mapping_key is None:
        raise KeyMaterialError("the key ring has no mapping_key")
    blob = path.read_bytes()
    if not blob.startswith(MAGIC):
        raise KeyMaterialError(f"{path} is not a tether mapping table")
    nonce, ct = blob[len(MAGIC) : len(MAGIC) + 12], blob[len(MAGIC) + 12 :]
    try:
        body = AESGCM(keys.mapping_key).decrypt(nonce, ct, _aad(domain))
    except InvalidTag:
        raise KeyMaterialError(
            f"cannot open {path}: wrong mapping key, wrong domain, or the file was altered"
        ) from None
    doc = json.loads(body)
    return [(c, v) for c, t, v in doc["entries"] if t == token]
