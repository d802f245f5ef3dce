"""What the gate knows about a device: its tenant, class, key, and whether to trust it.

The first record of a device costs a registry look-up and a certificate check;
later ones cost a dictionary look-up, until the registry's generation moves
(a revocation, renewal or CA change), which drops every cached entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tether.classes.catalog import ClassCatalog, ClassRuntime
from tether.contract.codes import CERT_EXPIRED, UNKNOWN_DEVICE, UNKNOWN_TYPE, UNTRUSTED_CERT
from tether.errors import CertificateRejectedError, RecordRejectedError
from tether.identity.verifier import CertificateVerifier
from tether.registry.base import DeviceRegistry


@dataclass(frozen=True, slots=True)
class DeviceContext:
    serial: str
    tenant: str
    runtime: ClassRuntime
    public_key: ec.EllipticCurvePublicKey
    not_after_ms: int
    issuer_trusted_until_ms: int | None


class DeviceDirectory:
    """Device contexts for the gate, cached per serial."""

    def __init__(
        self,
        registry: DeviceRegistry,
        verifier: CertificateVerifier,
        catalog: ClassCatalog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.verifier = verifier
        self.catalog = catalog
        self.clock = clock
        self._cache: dict[str, DeviceContext] = {}
        self._generation = -1

    def lookup(self, serial: str, now_ms: int) -> DeviceContext:
        """The device's context, or a rejection with the contract's code."""
        generation = self.verifier.current_generation()
        if generation != self._generation:
            self._cache.clear()
            self._generation = generation
        ctx = self._cache.get(serial)
        if ctx is None:
            ctx = self._load(serial, now_ms / 1000)
            self._cache[serial] = ctx
        if now_ms >= ctx.not_after_ms:
            raise RecordRejectedError(CERT_EXPIRED, f"{serial}'s certificate has expired")
        if ctx.issuer_trusted_until_ms is not None and now_ms >= ctx.issuer_trusted_until_ms:
            raise RecordRejectedError(UNTRUSTED_CERT, f"{serial}'s issuer is no longer trusted")
        return ctx

    def _load(self, serial: str, at: float) -> DeviceContext:
        device = self.registry.find_device(serial)
        if device is None:
            raise RecordRejectedError(UNKNOWN_DEVICE, f"no device {serial!r} is registered")
        record = self.registry.certificate(device.fingerprint)
        if record is None:
            raise RecordRejectedError(UNKNOWN_DEVICE, f"{serial} has no certificate on record")
        cert = x509.load_pem_x509_certificate(record.pem.encode())
        try:
            verified = self.verifier.verify(cert, at=at)
        except CertificateRejectedError as exc:
            raise RecordRejectedError(exc.code, exc.detail) from None
        runtime = self.catalog.find(device.device_class)
        if runtime is None:
            raise RecordRejectedError(
                UNKNOWN_TYPE, f"{serial} is of class {device.device_class!r}, which has no pack"
            )
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)  # the verifier checked the profile
        until = verified.issuer_trusted_until
        return DeviceContext(
            serial,
            verified.tenant,
            runtime,
            key,
            int(verified.not_after * 1000),
            None if until is None else int(until * 1000),
        )
