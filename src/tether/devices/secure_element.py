"""A simulated secure element, one per software device.

It behaves like the chip a real device carries: the key pair is made inside it,
and it offers only what such a chip offers: give the public key, sign a digest,
make a certificate signing request. Nothing reads the private key out. The
elements of a whole simulated fleet are kept in one SQLite file (the devices'
"hardware"), apart from anything the platform stores.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

from tether.contract.values import Serial
from tether.errors import ConflictError, EngineError, NotFoundError
from tether.keys.keyfile import raw_signature


class SecureElement:
    """One device's secure element."""

    __slots__ = ("_key", "serial")

    def __init__(self, serial: str, key: ec.EllipticCurvePrivateKey) -> None:
        self.serial = serial
        self._key = key

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a SHA-256 digest; raw ``r || s`` as the contract's records carry it."""
        return raw_signature(self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))

    def sign(self, payload: bytes) -> bytes:
        """Sign a record payload (contract section 2)."""
        return self.sign_digest(hashlib.sha256(payload).digest())

    def make_csr(self, device_class: str | None = None) -> x509.CertificateSigningRequest:
        """A CSR for this element's key with CN = serial (and OU = class if given)."""
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, self.serial)]
        if device_class:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, device_class))
        return (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name(attrs))
            .sign(self._key, hashes.SHA256())
        )

    def export_key_for_tls(self, path: Path) -> Path:
        """Write the private key to ``path`` (PEM, mode 0600) for a software TLS stack.

        Simulator and tests only. A real device's TLS stack uses the key inside its
        chip and never sees it; a simulated device speaking MQTT through paho or
        Python's ``ssl`` needs a key file instead, and this is the simulated element's
        stand-in for that TLS stack. Nothing on the platform's side ever calls it.
        """
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(pem)
        return path


class SecureElementStore:
    """The secure elements of a simulated fleet, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS elements ("
                " serial TEXT PRIMARY KEY, key BLOB NOT NULL, certificate TEXT)"
            )
            self._db.commit()
        except sqlite3.Error as exc:
            raise EngineError(f"cannot open the secure-element store {path}: {exc}") from exc

    @classmethod
    def from_url(cls, url: str) -> SecureElementStore:
        if not url.startswith("sqlite:///"):
            raise EngineError(f"secure elements live in SQLite; {url!r} is not sqlite:///<path>")
        return cls(Path(url[len("sqlite:///") :]))

    def manufacture(self, serials: Sequence[str]) -> list[SecureElement]:
        """Make one element per serial, each with a fresh key generated inside it."""
        elements = [
            SecureElement(Serial(s).value, ec.generate_private_key(ec.SECP256R1())) for s in serials
        ]
        rows = [
            (
                e.serial,
                e._key.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            for e in elements
        ]
        with self._lock:
            try:
                with self._db:
                    self._db.executemany("INSERT INTO elements (serial, key) VALUES (?, ?)", rows)
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"a secure element already exists for a serial: {exc}") from exc
        return elements

    def open(self, serial: str) -> SecureElement:
        with self._lock:
            row = self._db.execute(
                "SELECT key FROM elements WHERE serial = ?", (serial,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no simulated secure element for serial {serial!r}")
        key = serialization.load_der_private_key(row[0], password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return SecureElement(serial, key)

    def store_certificates(self, certs: Sequence[tuple[str, str]]) -> None:
        """Write (serial, certificate PEM) pairs into the devices' flash."""
        with self._lock, self._db:
            self._db.executemany(
                "UPDATE elements SET certificate = ? WHERE serial = ?",
                [(pem, serial) for serial, pem in certs],
            )

    def certificate(self, serial: str) -> str:
        with self._lock:
            row = self._db.execute(
                "SELECT certificate FROM elements WHERE serial = ?", (serial,)
            ).fetchone()
        if row is None or row[0] is None:
            raise NotFoundError(f"no certificate stored on simulated device {serial!r}")
        return str(row[0])

    def serials(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT serial FROM elements ORDER BY serial")]

    def close(self) -> None:
        with self._lock:
            self._db.close()
