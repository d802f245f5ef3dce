"""The certificate verifier every front door shares.

A device certificate is accepted when it chains to a manufacturing CA its
tenant trusts now, is inside its validity window, names a valid serial, and is
the current certificate of an active device in the registry. A device not yet
registered is registered on this first verified contact when its tenant allows
just-in-time registration.

Verified certificates are cached by fingerprint, so a known device costs a
dictionary lookup. Changes of trust (revocation, renewal, CA rotation) made
through the same registry object are honoured on the next call, because the
registry tells its subscribers; changes made by other processes are seen within
``identity.revocation_poll_seconds``, because every lookup checks the
registry's generation counter when that interval has passed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tether.contract.values import Serial
from tether.errors import CertificateRejectedError, ConflictError, InvalidSerialError
from tether.identity.ca import MANUFACTURING, fingerprint
from tether.identity.provisioning import device_entry
from tether.registry.base import DEVICE_ACTIVE, CARecord, DeviceRecord, DeviceRegistry


@dataclass(frozen=True, slots=True)
class VerifiedDevice:
    serial: str
    tenant: str
    device_class: str
    fingerprint: str
    not_after: float
    # The end of the issuing CA's trust window (a rotated CA's overlap), if any.
    issuer_trusted_until: float | None = None


class CertificateVerifier:
    """Checks device certificates against trusted CAs and the registry."""

    def __init__(
        self,
        registry: DeviceRegistry,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 5.0,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, VerifiedDevice] = {}
        self._anchors: dict[bytes, list[CARecord]] = {}
        self._generation = -1
        self._checked_at = float("-inf")
        self._refresh(force=True)
        # Changes made through the same registry object are seen on the next call.
        registry.subscribe(self._due)

    def _due(self) -> None:
        self._checked_at = float("-inf")

    # keeping up with the registry
    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < self.poll_seconds:
            return
        self._checked_at = now
        generation = self.registry.generation()
        if generation == self._generation and not force:
            return
        anchors: dict[bytes, list[CARecord]] = {}
        for ca in self.registry.list_cas(kind=MANUFACTURING):
            anchors.setdefault(ca.cert.subject.public_bytes(), []).append(ca)
        with self._lock:
            self._anchors = anchors
            self._generation = generation
            # Renewals, revocations and CA changes all bump the generation: drop every
            # cached verdict and let each device be re-checked once on its next contact.
            self._cache.clear()

    def current_generation(self) -> int:
        """The registry generation this verifier's caches reflect (polled when due)."""
        self._refresh()
        return self._generation

    def cached(self) -> int:
        return len(self._cache)

    # verification
    def verify(
        self, cert: x509.Certificate | bytes, tenant: str | None = None, at: float | None = None
    ) -> VerifiedDevice:
        """Verify a device certificate (object or DER); raise CertificateRejectedError.

        ``tenant``, when given, is the only tenant the certificate may belong to;
        ``at`` is the moment to judge validity for (default now), e.g. a record's arrival.
        """
        self._refresh()
        if isinstance(cert, bytes):
            try:
                cert = x509.load_der_x509_certificate(cert)
            except ValueError as exc:
                raise CertificateRejectedError(
                    "untrusted_cert", f"not a certificate: {exc}"
                ) from exc
        fp = fingerprint(cert)
        hit = self._cache.get(fp)
        if hit is not None:
            if self.clock() >= hit.not_after:
                raise CertificateRejectedError(
                    "cert_expired", f"{hit.serial}'s certificate expired"
                )
            if tenant is not None and hit.tenant != tenant:
                raise CertificateRejectedError(
                    "untrusted_cert", f"{hit.serial} does not belong to tenant {tenant!r}"
                )
            return hit
        verdict = self._verify_cold(cert, fp, tenant, self.clock() if at is None else at)
        with self._lock:
            self._cache[fp] = verdict
        return verdict

    def _issuer(self, cert: x509.Certificate, now: float) -> CARecord:
        for ca in self._anchors.get(cert.issuer.public_bytes(), []):
            try:
                cert.verify_directly_issued_by(ca.cert)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if not ca.trusted_at(now):
                raise CertificateRejectedError(
                    "untrusted_cert", f"issuer {ca.name!r} is no longer trusted"
                )
            return ca
        raise CertificateRejectedError(
            "untrusted_cert", f"no trusted manufacturing CA issued {cert.subject.rfc4514_string()}"
        )

    def _verify_cold(
        self, cert: x509.Certificate, fp: str, tenant: str | None, now: float
    ) -> VerifiedDevice:
        ca = self._issuer(cert, now)
        if tenant is not None and ca.tenant != tenant:
            raise CertificateRejectedError(
                "untrusted_cert", f"the issuer belongs to another tenant than {tenant!r}"
            )
        if not cert.not_valid_before_utc.timestamp() <= now < cert.not_valid_after_utc.timestamp():
            raise CertificateRejectedError(
                "cert_expired", f"outside its validity window (until {cert.not_valid_after_utc})"
            )
        _check_device_profile(cert)
        try:
            serial = Serial(str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value))
        except (IndexError, InvalidSerialError) as exc:
            raise CertificateRejectedError(
                "untrusted_cert", f"no valid serial in CN: {exc}"
            ) from exc
        device = self.registry.find_device(serial.value) or self._register_jit(cert, ca)
        return self._check_registry(device, fp, ca)

    def _register_jit(self, cert: x509.Certificate, ca: CARecord) -> DeviceRecord:
        assert ca.tenant is not None
        serial = str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        if not self.registry.get_tenant(ca.tenant).jit_enabled:
            raise CertificateRejectedError(
                "unknown_device",
                f"{serial} is not registered and tenant {ca.tenant!r} "
                "does not register devices just in time",
            )
        units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        if not units:
            raise CertificateRejectedError(
                "unknown_device",
                f"{serial} is not registered and its certificate names no "
                "device class (subject OU), so it cannot be registered just in time",
            )
        entry = device_entry(
            cert, ca, ca.tenant, str(units[0].value), "unknown", "jit", self.clock()
        )
        with contextlib.suppress(ConflictError):  # another door registered it a moment ago
            self.registry.add_devices([entry])
        return self.registry.get_device(serial)

    def _check_registry(self, device: DeviceRecord, fp: str, ca: CARecord) -> VerifiedDevice:
        if device.tenant != ca.tenant:
            raise CertificateRejectedError(
                "untrusted_cert", f"{device.serial} is registered to another tenant"
            )
        if device.status != DEVICE_ACTIVE:
            raise CertificateRejectedError("cert_revoked", f"{device.serial} is {device.status}")
        if device.fingerprint != fp:
            raise CertificateRejectedError(
                "cert_revoked", f"this is not {device.serial}'s current certificate (superseded)"
            )
        return VerifiedDevice(
            device.serial,
            device.tenant,
            device.device_class,
            fp,
            device.not_after,
            ca.trusted_until,
        )


def _check_device_profile(cert: x509.Certificate) -> None:
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if basic.ca:
            raise CertificateRejectedError("untrusted_cert", "a CA certificate is not a device")
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CertificateRejectedError("untrusted_cert", f"missing extension: {exc}") from exc
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise CertificateRejectedError("untrusted_cert", "extendedKeyUsage lacks clientAuth")
