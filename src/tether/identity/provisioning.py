"""Provisioning: giving devices their identity.

Three paths lead into the registry:

- ``provision``: a simulated factory line. Each device's key pair is made in its
  own simulated secure element; only a CSR comes out, and the certificate goes back.
- ``enroll``: the factory path for real hardware. A CSR made elsewhere is checked
  (its signature, its serial, its key type) and a certificate issued.
- ``renew``: a registered device with a valid certificate asks for a new one with
  a CSR signed by its current key (or, for a new key, a proof signed by it).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.x509.oid import NameOID

from tether.contract.values import Serial
from tether.devices.secure_element import SecureElementStore
from tether.errors import ConflictError, CSRRejectedError, IdentityError
from tether.identity.ca import Authority, fingerprint, to_pem
from tether.registry.base import (
    CERT_CURRENT,
    DEVICE_ACTIVE,
    CARecord,
    CertificateRecord,
    DeviceRecord,
    DeviceRegistry,
)

_CLASS = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_HW = re.compile(r"[A-Za-z0-9._-]{1,32}")
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def check_class(name: str) -> str:
    if not _CLASS.fullmatch(name):
        raise IdentityError(
            f"{name!r} is not a device class name: use lower-case letters, digits and '-'"
        )
    return name


def check_hw(rev: str) -> str:
    if not _HW.fullmatch(rev):
        raise IdentityError(f"{rev!r} is not a hardware revision: use 1-32 of A-Z a-z 0-9 . _ -")
    return rev


def class_prefix(device_class: str) -> str:
    """``oral-care-brush`` -> ``OCB``: the default serial prefix of a class."""
    return "".join(part[0] for part in device_class.split("-") if part).upper()


def new_serial(prefix: str) -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return Serial(f"{prefix}-{body}" if prefix else body).value


def _cert_record(
    cert: x509.Certificate, serial: str, ca: CARecord, now: float
) -> CertificateRecord:
    return CertificateRecord(
        fingerprint=fingerprint(cert),
        serial=serial,
        serial_number=cert.serial_number,
        ca_id=ca.id,
        not_after=cert.not_valid_after_utc.timestamp(),
        status=CERT_CURRENT,
        pem=to_pem(cert),
        issued_at=now,
    )


def device_entry(
    cert: x509.Certificate,
    ca: CARecord,
    tenant: str,
    device_class: str,
    hw: str,
    source: str,
    now: float,
) -> tuple[DeviceRecord, CertificateRecord]:
    """The registry rows for a device and its first certificate."""
    serial = csr_serial(cert.subject)
    record = _cert_record(cert, serial, ca, now)
    device = DeviceRecord(
        serial=serial,
        tenant=tenant,
        device_class=device_class,
        hw=hw,
        status=DEVICE_ACTIVE,
        fingerprint=record.fingerprint,
        not_after=record.not_after,
        source=source,
        created_at=now,
    )
    return device, record


def csr_serial(subject: x509.Name) -> str:
    """The serial a subject names: its one CN, which must be a valid serial."""
    cns = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1:
        raise CSRRejectedError(f"the subject must carry exactly one CN, found {len(cns)}")
    return Serial(str(cns[0].value)).value


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM or DER CSR and check its signature and key type."""
    try:
        csr = (
            x509.load_pem_x509_csr(data)
            if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_csr(data)
        )
    except ValueError as exc:
        raise CSRRejectedError(f"not a PEM or DER certificate signing request: {exc}") from exc
    if not csr.is_signature_valid:
        raise CSRRejectedError("the CSR's signature does not verify against its own key")
    csr_key(csr)
    return csr


def csr_key(csr: x509.CertificateSigningRequest) -> ec.EllipticCurvePublicKey:
    """The CSR's public key, which must be EC P-256."""
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CSRRejectedError("the CSR's key is not EC P-256; device keys must be P-256")
    return key


@dataclass(frozen=True)
class ProvisionedDevice:
    serial: str
    fingerprint: str


class Provisioner:
    """Issues device identities and records them in the registry."""

    def __init__(
        self,
        authority: Authority,
        registry: DeviceRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.authority = authority
        self.registry = registry
        self.clock = clock

    def provision(
        self,
        elements: SecureElementStore,
        tenant: str,
        device_class: str,
        hw: str,
        count: int,
        prefix: str | None = None,
        batch: int = 500,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[ProvisionedDevice]:
        """Make ``count`` simulated devices the way a factory line would."""
        check_class(device_class)
        check_hw(hw)
        if count < 1:
            raise IdentityError("--count must be at least 1")
        self.registry.get_tenant(tenant)
        ca = self.authority.issuing_ca(tenant)
        chosen_prefix = class_prefix(device_class) if prefix is None else prefix
        made: list[ProvisionedDevice] = []
        while len(made) < count:
            serials = [new_serial(chosen_prefix) for _ in range(min(batch, count - len(made)))]
            now = self.clock()
            entries = []
            for element in elements.manufacture(serials):
                csr = load_csr(
                    element.make_csr(device_class).public_bytes(serialization.Encoding.DER)
                )
                cert, _ = self.authority.issue_device_certificate(
                    tenant,
                    element.serial,
                    device_class,
                    csr_key(csr),
                    ca,
                )
                entries.append(device_entry(cert, ca, tenant, device_class, hw, "provisioned", now))
            self.registry.add_devices(entries)
            elements.store_certificates([(d.serial, c.pem) for d, c in entries])
            made.extend(ProvisionedDevice(d.serial, d.fingerprint) for d, _ in entries)
            if on_progress:
                on_progress(len(entries))
        return made

    def enroll(self, csr_data: bytes, tenant: str, device_class: str, hw: str) -> x509.Certificate:
        """Issue a certificate for a key made elsewhere (real hardware at a factory)."""
        check_class(device_class)
        check_hw(hw)
        csr = load_csr(csr_data)
        serial = csr_serial(csr.subject)
        self.registry.get_tenant(tenant)
        if self.registry.find_device(serial) is not None:
            raise ConflictError(
                f"serial {serial!r} is already registered; a device renews its certificate "
                "instead of enrolling again"
            )
        cert, ca = self.authority.issue_device_certificate(
            tenant,
            serial,
            device_class,
            csr_key(csr),
        )
        now = self.clock()
        self.registry.add_devices(
            [device_entry(cert, ca, tenant, device_class, hw, "enrolled", now)]
        )
        return cert

    def renew(self, csr_data: bytes, proof: bytes | None = None) -> x509.Certificate:
        """A new certificate for a registered device that holds a valid one.

        The CSR must be for the device's current key; for a new key, ``proof`` is a
        raw ``r || s`` signature over SHA-256 of the CSR's DER, made with the current key.
        """
        csr = load_csr(csr_data)
        serial = csr_serial(csr.subject)
        device = self.registry.get_device(serial)
        if device.status != DEVICE_ACTIVE:
            raise CSRRejectedError(f"device {serial!r} is {device.status}; it cannot renew")
        current = self.registry.certificate(device.fingerprint)
        if current is None:
            raise CSRRejectedError(f"device {serial!r} has no current certificate on record")
        now = self.clock()
        if current.not_after <= now:
            raise CSRRejectedError(
                f"device {serial!r}'s certificate has expired; re-enroll it at a factory"
            )
        current_key = x509.load_pem_x509_certificate(current.pem.encode()).public_key()
        assert isinstance(current_key, ec.EllipticCurvePublicKey)
        if csr.public_key() != current_key:
            _check_proof(current_key, csr, proof, serial)
        cert, ca = self.authority.issue_device_certificate(
            device.tenant,
            serial,
            device.device_class,
            csr_key(csr),
        )
        self.registry.replace_certificate(_cert_record(cert, serial, ca, now), now)
        return cert


def _check_proof(
    key: ec.EllipticCurvePublicKey,
    csr: x509.CertificateSigningRequest,
    proof: bytes | None,
    serial: str,
) -> None:
    if proof is None or len(proof) != 64:
        raise CSRRejectedError(
            f"the CSR is for a new key; renewing {serial!r} to a new key needs a 64-byte proof "
            "signed with the current key"
        )
    digest = hashlib.sha256(csr.public_bytes(serialization.Encoding.DER)).digest()
    der = encode_dss_signature(int.from_bytes(proof[:32], "big"), int.from_bytes(proof[32:], "big"))
    try:
        key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        raise CSRRejectedError(
            f"the renewal proof for {serial!r} does not verify against its current key"
        ) from None
