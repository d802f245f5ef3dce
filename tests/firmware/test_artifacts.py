"""Adding firmware: blob, signed manifest and catalog row, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.firmware.conftest import NOW, Clock, open_platform, write_image
from tether.errors import ConflictError, FirmwareError, ManifestRefusedError, NotFoundError
from tether.firmware.artifacts import DEFAULT_VALIDITY, NewImage
from tether.firmware.delta import apply_patch, make_patch
from tether.firmware.verify import Device, verify
from tether.platform import Platform

V1 = os.urandom(64 * 1024)
# The next version: mostly the same bytes, some changed, some added.
V2 = V1[:20_000] + b"new code path" * 100 + V1[21_000:] + os.urandom(3000)


def new(path: Path, version: str = "1.0.0", **changes: object) -> NewImage:
    fields: dict[str, object] = {
        "path": path,
        "device_class": "retail-cart",
        "version": version,
        "hw": ["B", "A"],
        "security_version": 1,
    }
    fields.update(changes)
    return NewImage(**fields)  # type: ignore[arg-type]


def test_add_stores_the_image_signs_the_manifest_and_lists_it(
    platform: Platform, tmp_path: Path
) -> None:
    added = platform.artifacts.add(new(write_image(tmp_path / "v1.bin", V1)))
    a = added.artifact
    assert added.warnings == []
    assert (a.device_class, a.version, a.hw, a.security_version) == (
        "retail-cart",
        "1.0.0",
        ["A", "B"],
        1,
    )
    assert a.sha256 == hashlib.sha256(V1).hexdigest() and a.size == len(V1)
    assert platform.blobs.read(a.blob_key) == V1
    m = a.manifest.manifest()
    assert m.image == "retail-cart-1.0.0.bin" and m.delta_from is None
    assert (m.not_before, m.not_after) == (int(NOW), int(NOW + DEFAULT_VALIDITY.total_seconds()))

    [listed] = platform.artifact_catalog.list()
    assert listed == a == platform.artifact_catalog.get("retail-cart", "1.0.0")
    assert platform.artifact_catalog.list("power-tool") == []
    device = Device(hw="A", security_version=0, anchors=[platform.firmware_public_key()])
    assert verify(listed.manifest, device, NOW + 1, platform.artifacts.image(listed)) == m


def test_the_catalog_survives_reopening(data_dir: Path, tmp_path: Path, clock: Clock) -> None:
    first = open_platform(data_dir, clock)
    first.firmware_key(create=True)
    first.artifacts.add(new(write_image(tmp_path / "v1.bin", V1)))
    first.close()
    again = open_platform(data_dir, clock)
    try:
        [a] = again.artifact_catalog.list("retail-cart")
        assert again.artifacts.image(a) == V1
    finally:
        again.close()


def test_a_version_is_added_once(platform: Platform, tmp_path: Path) -> None:
    image = write_image(tmp_path / "v1.bin", V1)
    platform.artifacts.add(new(image))
    with pytest.raises(ConflictError, match=r"retail-cart firmware 1\.0\.0 is already"):
        platform.artifacts.add(new(write_image(tmp_path / "other.bin", V2)))
    # The same version of another class is another artifact.
    platform.artifacts.add(new(image, device_class="power-tool"))
    assert len(platform.artifact_catalog.list()) == 2


def test_a_race_to_the_same_version_is_a_conflict_in_the_store(
    platform: Platform, tmp_path: Path
) -> None:
    added = platform.artifacts.add(new(write_image(tmp_path / "v1.bin", V1)))
    with pytest.raises(ConflictError, match=r"1\.0\.0 is already in the catalog"):
        platform.artifact_catalog.add(added.artifact)


def test_a_lower_security_version_is_added_with_a_warning(
    platform: Platform, tmp_path: Path
) -> None:
    platform.artifacts.add(new(write_image(tmp_path / "v2.bin", V2), "2.0.0", security_version=5))
    added = platform.artifacts.add(
        new(write_image(tmp_path / "v1.bin", V1), "1.9.1", security_version=4)
    )
    [warning] = added.warnings
    assert "2.0.0 (5)" in warning and "downgrade" in warning
    assert platform.artifact_catalog.get("retail-cart", "1.9.1").security_version == 4


def test_a_delta_names_its_base_and_rebuilds_the_full_image(
    platform: Platform, tmp_path: Path
) -> None:
    base = platform.artifacts.add(new(write_image(tmp_path / "v1.bin", V1))).artifact
    added = platform.artifacts.add(
        new(write_image(tmp_path / "v2.bin", V2), "1.1.0", delta_from="1.0.0")
    )
    a = added.artifact
    assert a.delta_from == "1.0.0" and a.delta_manifest is not None
    patch = platform.artifacts.patch(a)
    assert a.delta_size == len(patch) < len(V2) // 4

    m = a.delta_manifest.manifest()
    assert m.delta_from == "1.0.0" and m.delta is not None
    assert m.image == "retail-cart-1.1.0-from-1.0.0.bsdiff4"
    # The manifest's size and hash are the full result's; the delta block is the patch's.
    assert (m.size, m.sha256) == (len(V2), hashlib.sha256(V2).hexdigest())
    assert m.delta.base_sha256 == base.sha256
    assert m.delta.sha256 == hashlib.sha256(patch).hexdigest() and m.delta.size == len(patch)
    # The device's side: patch the base it holds, then judge the result.
    rebuilt = apply_patch(V1, patch, m.delta.base_sha256, m.sha256)
    assert rebuilt == V2
    device = Device(hw="B", security_version=1, anchors=[platform.firmware_public_key()])
    assert verify(a.delta_manifest, device, NOW + 5, rebuilt) == m
    # The full image and its own manifest are kept too, for devices on other versions.
    assert platform.artifacts.image(a) == V2 and a.manifest.manifest().delta_from is None


def test_a_patch_refuses_the_wrong_base_and_damage(tmp_path: Path) -> None:
    patch = make_patch(V1, V2)
    v1, v2 = hashlib.sha256(V1).hexdigest(), hashlib.sha256(V2).hexdigest()
    with pytest.raises(ManifestRefusedError) as info:
        apply_patch(V2, patch, v1, v2)
    assert info.value.reason == "wrong_base"
    with pytest.raises(ManifestRefusedError) as info:
        apply_patch(V1, b"BSDIFF40garbage", v1, v2)
    assert info.value.reason == "malformed"
    with pytest.raises(ManifestRefusedError) as info:
        apply_patch(V1, make_patch(V1, V2 + b"x"), v1, v2)
    assert info.value.reason == "hash_mismatch"


def test_a_delta_needs_a_stored_base_of_the_same_class(platform: Platform, tmp_path: Path) -> None:
    image = write_image(tmp_path / "v2.bin", V2)
    with pytest.raises(NotFoundError, match=r"no retail-cart firmware 0\.9\.0 .*none yet"):
        platform.artifacts.add(new(image, "1.1.0", delta_from="0.9.0"))
    with pytest.raises(FirmwareError, match="delta from itself"):
        platform.artifacts.add(new(image, "1.1.0", delta_from="1.1.0"))
    assert platform.artifact_catalog.list() == []


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"device_class": "toaster"}, NotFoundError, "known classes: .*retail-cart"),
        ({"version": "1.0"}, FirmwareError, "MAJOR.MINOR.PATCH"),
        ({"version": "01.0.0"}, FirmwareError, "not a firmware version"),
        ({"hw": []}, FirmwareError, "at least one hardware revision"),
        ({"hw": ["B rev"]}, FirmwareError, "not a hardware revision"),
        ({"security_version": -1}, FirmwareError, "out of range"),
        ({"requires_trust": ["bad anchor"]}, FirmwareError, "not a trust anchor name"),
        ({"not_before": 2_000, "not_after": 1_000}, FirmwareError, "never be valid"),
    ],
)
def test_bad_input_is_a_typed_error_saying_what_to_fix(
    platform: Platform,
    tmp_path: Path,
    changes: dict[str, object],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        platform.artifacts.add(new(write_image(tmp_path / "v1.bin", V1), **changes))
    assert platform.artifact_catalog.list() == []


def test_missing_and_empty_images_are_refused_before_anything_is_stored(
    platform: Platform, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match="no image file at"):
        platform.artifacts.add(new(tmp_path / "absent.bin"))
    with pytest.raises(FirmwareError, match="is empty"):
        platform.artifacts.add(new(write_image(tmp_path / "empty.bin", b"")))
    with pytest.raises(FirmwareError, match="not a file"):
        platform.artifacts.add(new(tmp_path))
    assert not list((platform.settings.data_dir / "blobs" / "sha256").rglob("*"))


def test_without_a_firmware_key_add_says_to_run_key_init(tmp_path: Path, clock: Clock) -> None:
    p = open_platform(tmp_path / "t", clock)
    try:
        with pytest.raises(NotFoundError, match="tether firmware key-init"):
            p.artifacts.add(new(write_image(tmp_path / "v1.bin", V1)))
        assert p.artifact_catalog.list() == []
    finally:
        p.close()
