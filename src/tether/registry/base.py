"""The registry port: what the identity layer needs to remember.

Times are seconds since the Unix epoch (floats). A device has one current
certificate; renewal supersedes the old one and revocation revokes them all.
``generation()`` grows whenever a revocation or a change of trusted CAs happens,
so a long-running process can notice changes made by another one cheaply.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from cryptography import x509

DEVICE_ACTIVE = "active"
DEVICE_REVOKED = "revoked"
CERT_CURRENT = "current"
CERT_SUPERSEDED = "superseded"
CERT_REVOKED = "revoked"
CA_ACTIVE = "active"  # trusted, and issues new certificates
CA_RETIRING = "retiring"  # trusted until ``trusted_until``, issues nothing
CA_RETIRED = "retired"  # no longer trusted


@dataclass(frozen=True)
class Tenant:
    name: str
    jit_enabled: bool
    created_at: float


@dataclass(frozen=True)
class CARecord:
    id: int
    tenant: str | None  # None for the platform's own CAs
    kind: str  # root | manufacturing | service
    name: str
    key_label: str | None
    cert_pem: str
    status: str
    trusted_until: float | None
    created_at: float

    @cached_property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem.encode())

    def trusted_at(self, now: float) -> bool:
        if self.status == CA_RETIRED:
            return False
        return self.trusted_until is None or now < self.trusted_until


@dataclass(frozen=True)
class CertificateRecord:
    fingerprint: str  # SHA-256 of the DER, hex
    serial: str  # the device serial
    serial_number: int  # the certificate's X.509 serial number
    ca_id: int
    not_after: float
    status: str
    pem: str
    issued_at: float
    revoked_at: float | None = None


@dataclass(frozen=True)
class DeviceRecord:
    serial: str
    tenant: str
    device_class: str
    hw: str
    status: str
    fingerprint: str  # of the current certificate
    not_after: float  # of the current certificate
    source: str  # provisioned | enrolled | jit
    created_at: float
    revoked_at: float | None = None
    revoke_reason: str | None = None


class DeviceRegistry(ABC):
    """Storage for tenants, CAs, devices and their certificates."""

    _listeners: list[Callable[[], None]]

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever this object changes trust (revocation, renewal, CAs)."""
        if not hasattr(self, "_listeners"):
            self._listeners = []
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in getattr(self, "_listeners", []):
            listener()

    @abstractmethod
    def add_tenant(self, name: str, jit_enabled: bool, now: float) -> Tenant:
        """Create a tenant; ConflictError if it exists."""

    @abstractmethod
    def get_tenant(self, name: str) -> Tenant:
        """The tenant; NotFoundError if unknown."""

    @abstractmethod
    def list_tenants(self) -> list[Tenant]:
        """Every tenant, by name."""

    @abstractmethod
    def set_jit(self, name: str, enabled: bool) -> None:
        """Turn just-in-time registration on or off for a tenant."""

    @abstractmethod
    def add_ca(
        self,
        tenant: str | None,
        kind: str,
        name: str,
        key_label: str | None,
        cert_pem: str,
        status: str,
        now: float,
    ) -> CARecord:
        """Record a CA certificate."""

    @abstractmethod
    def update_ca(self, ca_id: int, status: str, trusted_until: float | None) -> None:
        """Change a CA's status and trust window."""

    @abstractmethod
    def list_cas(self, tenant: str | None = None, kind: str | None = None) -> list[CARecord]:
        """CAs, oldest first, optionally of one tenant and kind."""

    @abstractmethod
    def add_devices(self, entries: Sequence[tuple[DeviceRecord, CertificateRecord]]) -> None:
        """Register devices with their first certificates, all or none."""

    @abstractmethod
    def get_device(self, serial: str) -> DeviceRecord:
        """The device; NotFoundError if unknown."""

    @abstractmethod
    def find_device(self, serial: str) -> DeviceRecord | None:
        """The device, or None."""

    @abstractmethod
    def list_devices(self, tenant: str | None = None) -> list[DeviceRecord]:
        """Devices, by serial."""

    @abstractmethod
    def count_devices(self, tenant: str | None = None) -> int:
        """How many devices are registered."""

    @abstractmethod
    def certificate(self, fingerprint: str) -> CertificateRecord | None:
        """A certificate by fingerprint, or None."""

    @abstractmethod
    def replace_certificate(self, cert: CertificateRecord, now: float) -> None:
        """Make ``cert`` the device's current certificate, superseding the old one."""

    @abstractmethod
    def revoke_device(self, serial: str, reason: str, now: float) -> DeviceRecord:
        """Revoke a device and every certificate it holds."""

    @abstractmethod
    def withdrawn_certificates(self, ca_id: int) -> list[CertificateRecord]:
        """Revoked and superseded certificates a CA issued, for its CRL."""

    @abstractmethod
    def expiring(self, before: float) -> list[CertificateRecord]:
        """Current certificates of active devices that expire before ``before``."""

    @abstractmethod
    def revoked_serials(self, serials: Iterable[str] | None = None) -> set[str]:
        """Serials of revoked devices (all, or among ``serials``)."""

    @abstractmethod
    def generation(self) -> int:
        """A counter that grows on every revocation, renewal and CA trust change."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
