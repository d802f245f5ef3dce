"""Key custody in key files: one PEM file per key, mode 0600, in a 0700 directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from tether.errors import ConflictError, CustodyError, NotFoundError
from tether.keys.base import KeyCustody, SigningKey

_LABEL = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


def check_label(label: str) -> str:
    if not _LABEL.fullmatch(label) or ".." in label:
        raise CustodyError(
            f"{label!r} is not a key label: use letters, digits, '.', '_', '-' and '/' separators"
        )
    return label


def raw_signature(der: bytes) -> bytes:
    """Convert a DER ECDSA signature to raw ``r || s`` (64 bytes)."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class FileSigningKey(SigningKey):
    def __init__(self, label: str, key: ec.EllipticCurvePrivateKey) -> None:
        self.label = label
        self._key = key

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign_digest(self, digest: bytes) -> bytes:
        if len(digest) != 32:
            raise CustodyError(f"a SHA-256 digest is 32 bytes, got {len(digest)}")
        der = self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        return raw_signature(der)


class FileKeyCustody(KeyCustody):
    """Keys as unencrypted PEM files readable by their owner only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, label: str) -> Path:
        return self.directory / (check_label(label).replace("/", "__") + ".pem")

    def create(self, label: str) -> SigningKey:
        path = self._path(label)
        if path.exists():
            raise ConflictError(f"a key labelled {label!r} already exists in {self.directory}")
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return FileSigningKey(label, key)

    def get(self, label: str) -> SigningKey:
        path = self._path(label)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no key labelled {label!r} in {self.directory}") from None
        if path.stat().st_mode & 0o077:
            raise CustodyError(f"{path} is readable by others; restrict it with: chmod 600 {path}")
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CustodyError(f"{path} does not hold an EC private key")
        return FileSigningKey(label, key)

    def exists(self, label: str) -> bool:
        return self._path(label).exists()

    def labels(self) -> list[str]:
        if not self.directory.exists():
            return []
        return sorted(p.stem.replace("__", "/") for p in self.directory.glob("*.pem"))
