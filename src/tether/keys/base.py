"""The key custody port.

A custodian creates P-256 keys under a label and signs SHA-256 digests with them.
It never hands a private key out: callers get the public key and signatures only.
Signatures are raw ``r || s`` (64 bytes, big-endian), the form PKCS#11 returns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from cryptography.hazmat.primitives.asymmetric import ec


class SigningKey(ABC):
    """A P-256 private key held by a custodian."""

    label: str

    @abstractmethod
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The key's public half."""

    @abstractmethod
    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a 32-byte SHA-256 digest; return raw ``r || s``."""


class KeyCustody(ABC):
    """Creates, finds and lists labelled P-256 signing keys."""

    @abstractmethod
    def create(self, label: str) -> SigningKey:
        """Make a new key under ``label``; ConflictError if the label is taken."""

    @abstractmethod
    def get(self, label: str) -> SigningKey:
        """The key under ``label``; NotFoundError if there is none."""

    @abstractmethod
    def exists(self, label: str) -> bool:
        """Whether a key is held under ``label``."""

    @abstractmethod
    def labels(self) -> list[str]:
        """Every label held, sorted."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the custodian's resources (sessions, handles)."""
