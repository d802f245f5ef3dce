"""The device registry: tenants, their certificate authorities, devices and certificates."""

from tether.registry.base import (
    CARecord,
    CertificateRecord,
    DeviceRecord,
    DeviceRegistry,
    Tenant,
)
from tether.registry.sql import SqlRegistry

__all__ = [
    "CARecord",
    "CertificateRecord",
    "DeviceRecord",
    "DeviceRegistry",
    "SqlRegistry",
    "Tenant",
]
