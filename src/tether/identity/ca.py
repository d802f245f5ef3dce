"""Certificate authorities: a root and manufacturing CAs per tenant, and the platform's own.

Each tenant has a P-256 root and one or more manufacturing intermediates under it.
Exactly one manufacturing CA issues at a time; after a rotation the previous one
stays trusted until the end of its overlap window. The platform's service CA
issues the broker's server certificate and the certificates of tether's own
clients (ingest bridge, control); it is never trusted for devices.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tether.errors import ConflictError, IdentityError, NotFoundError
from tether.identity.x509sign import sign_certificate, sign_crl
from tether.keys.base import KeyCustody, SigningKey
from tether.registry.base import (
    CA_ACTIVE,
    CA_RETIRED,
    CA_RETIRING,
    CERT_SUPERSEDED,
    CARecord,
    DeviceRegistry,
)
from tether.settings import IdentitySettings

_TENANT = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ROOT = "root"
MANUFACTURING = "manufacturing"
SERVICE = "service"
SERVICE_KEY_LABEL = "platform/service-ca"
# Clock skew allowance for freshly issued certificates.
_BACKDATE = dt.timedelta(minutes=5)


def check_tenant(name: str) -> str:
    if not _TENANT.fullmatch(name):
        raise IdentityError(
            f"{name!r} is not a tenant name: use 1-63 lower-case letters, digits and '-', "
            "starting with a letter or digit"
        )
    return name


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, in hex: the certificate's identity in tether."""
    return cert.fingerprint(hashes.SHA256()).hex()


def to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _ca_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_key: ec.EllipticCurvePublicKey,
    now: float,
    days: int,
    path_length: int,
) -> x509.CertificateBuilder:
    start = _utc(now) - _BACKDATE
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
    )


def _name(common_name: str, organization: str, unit: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _leaf_usage(server: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=server,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


class Authority:
    """Creates and rotates CAs and issues certificates from them."""

    def __init__(
        self,
        registry: DeviceRegistry,
        custody: KeyCustody,
        settings: IdentitySettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.custody = custody
        self.settings = settings or IdentitySettings()
        self.clock = clock
        self._keys: dict[str, SigningKey] = {}

    def key(self, label: str) -> SigningKey:
        if label not in self._keys:
            self._keys[label] = self.custody.get(label)
        return self._keys[label]

    # tenants and their CAs
    def init_tenant(self, tenant: str, jit: bool = False) -> tuple[CARecord, CARecord]:
        """Create a tenant with its root and first manufacturing CA."""
        check_tenant(tenant)
        now = self.clock()
        root_label = f"tenants/{tenant}/root"
        if self.custody.exists(root_label):
            raise ConflictError(
                f"key custody already holds a root key for tenant {tenant!r} ({root_label})"
            )
        self.registry.add_tenant(tenant, jit, now)
        root_key = self.custody.create(root_label)
        self._keys[root_label] = root_key
        subject = _name(f"{tenant} device root CA", tenant)
        cert = sign_certificate(
            _ca_builder(
                subject,
                subject,
                root_key.public_key(),
                root_key.public_key(),
                now,
                self.settings.root_ca_days,
                path_length=1,
            ),
            root_key,
        )
        root = self.registry.add_ca(
            tenant, ROOT, subject.rfc4514_string(), root_label, to_pem(cert), CA_ACTIVE, now
        )
        return root, self._new_manufacturing(tenant, root)

    def _new_manufacturing(self, tenant: str, root: CARecord) -> CARecord:
        now = self.clock()
        number = len(self.registry.list_cas(tenant, MANUFACTURING)) + 1
        label = f"tenants/{tenant}/manufacturing-{number}"
        key = self.custody.create(label)
        self._keys[label] = key
        subject = _name(f"{tenant} manufacturing CA {number}", tenant)
        root_key = self.key(root.key_label or "")
        days = min(
            self.settings.manufacturing_ca_days,
            int((root.cert.not_valid_after_utc.timestamp() - now) // 86400),
        )
        cert = sign_certificate(
            _ca_builder(
                subject,
                root.cert.subject,
                key.public_key(),
                root_key.public_key(),
                now,
                days,
                path_length=0,
            ),
            root_key,
        )
        return self.registry.add_ca(
            tenant, MANUFACTURING, subject.rfc4514_string(), label, to_pem(cert), CA_ACTIVE, now
        )

    def root(self, tenant: str) -> CARecord:
        roots = self.registry.list_cas(tenant, ROOT)
        if not roots:
            self.registry.get_tenant(tenant)
            raise NotFoundError(f"tenant {tenant!r} has no root CA")
        return roots[-1]

    def issuing_ca(self, tenant: str) -> CARecord:
        """The manufacturing CA that issues new device certificates for a tenant."""
        active = [c for c in self.registry.list_cas(tenant, MANUFACTURING) if c.status == CA_ACTIVE]
        if not active:
            self.registry.get_tenant(tenant)
            raise NotFoundError(f"tenant {tenant!r} has no active manufacturing CA")
        return active[-1]

    def rotate(self, tenant: str, overlap_days: float) -> CARecord:
        """Make a new manufacturing CA; the old ones stay trusted for ``overlap_days``."""
        if overlap_days < 0:
            raise IdentityError("the overlap window cannot be negative")
        old = [c for c in self.registry.list_cas(tenant, MANUFACTURING) if c.status == CA_ACTIVE]
        new = self._new_manufacturing(tenant, self.root(tenant))
        until = self.clock() + overlap_days * 86400
        for ca in old:
            self.registry.update_ca(ca.id, CA_RETIRING, until)
        return new

    def retire_expired(self) -> list[CARecord]:
        """Mark CAs whose overlap window has passed as retired."""
        now = self.clock()
        done = []
        for ca in self.registry.list_cas(kind=MANUFACTURING):
            if (
                ca.status == CA_RETIRING
                and ca.trusted_until is not None
                and ca.trusted_until <= now
            ):
                self.registry.update_ca(ca.id, CA_RETIRED, ca.trusted_until)
                done.append(ca)
        return done

    def trusted_manufacturing(self, tenant: str | None = None) -> list[CARecord]:
        now = self.clock()
        return [c for c in self.registry.list_cas(tenant, MANUFACTURING) if c.trusted_at(now)]

    def chain_pem(self, tenant: str) -> str:
        """The tenant's trusted manufacturing CAs and root, as one PEM bundle."""
        parts = [c.cert_pem for c in self.trusted_manufacturing(tenant)]
        return "".join([*parts, self.root(tenant).cert_pem])

    # device certificates
    def issue_device_certificate(
        self,
        tenant: str,
        serial: str,
        device_class: str,
        public_key: ec.EllipticCurvePublicKey,
        ca: CARecord | None = None,
    ) -> tuple[x509.Certificate, CARecord]:
        """A device certificate exactly as contract section 1 describes it."""
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, ec.SECP256R1
        ):
            raise IdentityError("device keys must be EC P-256 (secp256r1)")
        ca = ca or self.issuing_ca(tenant)
        ca_key = self.key(ca.key_label or "")
        now = self.clock()
        if ca.cert.not_valid_after_utc.timestamp() <= now:
            raise IdentityError(
                f"the issuing CA {ca.name!r} expired on {ca.cert.not_valid_after_utc.date()}; "
                f"start a new one with: tether ca rotate --tenant {tenant}"
            )
        start = _utc(now) - _BACKDATE
        end = min(
            start + dt.timedelta(days=self.settings.device_cert_days), ca.cert.not_valid_after_utc
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(serial, tenant, device_class))
            .issuer_name(ca.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_usage(server=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        return sign_certificate(builder, ca_key), ca

    def crl(
        self, ca: CARecord, next_update_seconds: float = 86400
    ) -> x509.CertificateRevocationList:
        """The CA's revocation list: revoked and superseded device certificates."""
        now = _utc(self.clock())
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.cert.subject)
            .last_update(now - _BACKDATE)
            .next_update(now + dt.timedelta(seconds=next_update_seconds))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        for cert in self.registry.withdrawn_certificates(ca.id):
            reason = (
                x509.ReasonFlags.superseded
                if cert.status == CERT_SUPERSEDED
                else x509.ReasonFlags.key_compromise
            )
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(_utc(cert.revoked_at or cert.issued_at))
                .add_extension(x509.CRLReason(reason), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(revoked)
        return sign_crl(builder, self.key(ca.key_label or ""))

    # the platform's own service CA
    def service_ca(self) -> CARecord:
        """The platform's service CA, created on first use."""
        existing = self.registry.list_cas(None, SERVICE)
        if existing:
            return existing[-1]
        now = self.clock()
        key = (
            self.custody.get(SERVICE_KEY_LABEL)
            if self.custody.exists(SERVICE_KEY_LABEL)
            else self.custody.create(SERVICE_KEY_LABEL)
        )
        subject = _name("tether service CA", "tether")
        cert = sign_certificate(
            _ca_builder(
                subject,
                subject,
                key.public_key(),
                key.public_key(),
                now,
                self.settings.root_ca_days,
                path_length=0,
            ),
            key,
        )
        return self.registry.add_ca(
            None, SERVICE, subject.rfc4514_string(), SERVICE_KEY_LABEL, to_pem(cert), CA_ACTIVE, now
        )

    def issue_service_certificate(
        self,
        common_name: str,
        hostnames: list[str] | None = None,
        days: int = 825,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A server (with ``hostnames``) or client certificate from the service CA.

        Its key is made here, for a process that needs it as a file (the broker).
        """
        ca = self.service_ca()
        ca_key = self.key(ca.key_label or "")
        key = ec.generate_private_key(ec.SECP256R1())
        start = _utc(self.clock()) - _BACKDATE
        usage = ExtendedKeyUsageOID.SERVER_AUTH if hostnames else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, "tether"))
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_usage(server=bool(hostnames)), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if hostnames:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(_san(hostnames)), critical=False
            )
        return sign_certificate(builder, ca_key), key


def _san(hostnames: list[str]) -> list[x509.GeneralName]:
    import ipaddress

    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names
