"""Signed updates and provisioned devices for the device-side OTA tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from tether.firmware.delta import make_patch
from tether.firmware.manifest import Delta, Manifest, sign_manifest
from tether.keys.keyfile import FileSigningKey
from tether.sim.ota import OtaDevice, Power, build_image

CLASS = "retail-cart"
#: The platform's signed time in these tests: 2027-01-15 08:00:00 UTC.
PLATFORM_NOW = 1_800_000_000
DAY = 86_400


def new_key(label: str = "firmware") -> FileSigningKey:
    return FileSigningKey(label, ec.generate_private_key(ec.SECP256R1()))


@dataclass(frozen=True)
class Update:
    envelope: bytes  # what travels with the transfer
    data: bytes  # the bytes transferred: the image, or the patch
    image: bytes  # the full image that boots
    version: str


def manifest_for(
    image: bytes,
    version: str,
    *,
    hw: tuple[str, ...] = ("A", "B"),
    security_version: int = 1,
    not_before: int = PLATFORM_NOW - DAY,
    not_after: int = PLATFORM_NOW + 365 * DAY,
    requires_trust: tuple[str, ...] = (),
) -> Manifest:
    return Manifest(
        image=f"{CLASS}-{version}.bin",
        device_class=CLASS,
        version=version,
        security_version=security_version,
        hw=sorted(hw),
        size=len(image),
        sha256=hashlib.sha256(image).hexdigest(),
        not_before=not_before,
        not_after=not_after,
        requires_trust=sorted(requires_trust),
    )


def full_update(key: FileSigningKey, image: bytes, version: str, **fields: object) -> Update:
    manifest = manifest_for(image, version, **fields)  # type: ignore[arg-type]
    return Update(sign_manifest(manifest, key).envelope(), image, image, version)


def delta_update(
    key: FileSigningKey, base: bytes, base_version: str, image: bytes, version: str
) -> Update:
    patch = make_patch(base, image)
    full = manifest_for(image, version)
    manifest = Manifest(
        **{
            **full.__dict__,
            "image": f"{CLASS}-{version}-from-{base_version}.bsdiff4",
            "delta_from": base_version,
            "delta": Delta(
                base_sha256=hashlib.sha256(base).hexdigest(),
                size=len(patch),
                sha256=hashlib.sha256(patch).hexdigest(),
            ),
        }
    )
    return Update(sign_manifest(manifest, key).envelope(), patch, image, version)


def device(
    key: FileSigningKey,
    image: bytes,
    version: str = "1.0.0",
    *,
    hw: str = "A",
    security_version: int = 1,
    power: Power | None = None,
    trust: tuple[str, ...] = (),
    max_boots: int = 3,
) -> OtaDevice:
    """A device running ``image``, powered on and with its first boot acknowledged."""
    dev = OtaDevice.provision(
        image,
        version,
        hw,
        [key.public_key()],
        security_version=security_version,
        device_class=CLASS,
        trust=trust,
        power=power,
        max_boots=max_boots,
    )
    dev.power_on()
    dev.acknowledge()
    return dev


def images(size: int = 600) -> tuple[bytes, bytes]:
    """An old and a new image of the same shape."""
    return build_image("1.0.0", size), build_image("1.1.0", size)
