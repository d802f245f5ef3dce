"""The signed manifest and a device's verdict on it: every refusal of section 10."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tether.errors import ManifestRefusedError
from tether.firmware.manifest import (
    Manifest,
    SignedManifest,
    parse_manifest,
    read_envelope,
    sign_manifest,
)
from tether.firmware.verify import Device, Refusal, anchor_name, judge, verify
from tether.keys import KeyCustody, SigningKey, open_custody

IMAGE = b"\x7fFIRMWARE" + bytes(range(256)) * 64
NOT_BEFORE = 1_800_000_000
NOT_AFTER = NOT_BEFORE + 90 * 86400


@pytest.fixture
def custody(tmp_path: Path) -> Iterator[KeyCustody]:
    custody = open_custody(f"file:{tmp_path / 'keys'}")
    yield custody
    custody.close()


@pytest.fixture
def key(custody: KeyCustody) -> SigningKey:
    return custody.create("firmware")


@pytest.fixture
def other_key(custody: KeyCustody) -> SigningKey:
    return custody.create("someone-else")


def manifest(**changes: object) -> Manifest:
    base = Manifest(
        image="retail-cart-2.1.0.bin",
        device_class="retail-cart",
        version="2.1.0",
        security_version=3,
        hw=["A", "B"],
        size=len(IMAGE),
        sha256=hashlib.sha256(IMAGE).hexdigest(),
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
        requires_trust=[],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def device(key: SigningKey, **changes: object) -> Device:
    base = Device(
        hw="B", security_version=3, anchors=[key.public_key()], device_class="retail-cart"
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def reason(signed: SignedManifest, dev: Device, now: float, image: bytes | None = IMAGE) -> str:
    with pytest.raises(ManifestRefusedError) as info:
        verify(signed, dev, now, image)
    return info.value.reason


def test_the_manifest_has_the_contract_fields_in_canonical_json(key: SigningKey) -> None:
    signed = sign_manifest(manifest(), key)
    doc = json.loads(signed.body)
    assert set(doc) == {
        "image",
        "version",
        "security_version",
        "hw",
        "size",
        "sha256",
        "not_before",
        "not_after",
        "requires_trust",
        "class",
    }
    assert signed.body == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert len(signed.signature) == 64
    # The envelope carries the exact signed bytes.
    assert read_envelope(signed.envelope()) == signed
    assert parse_manifest(signed.body) == manifest()


def test_a_good_image_is_accepted_at_the_platform_time(key: SigningKey) -> None:
    signed = sign_manifest(manifest(), key)
    assert verify(signed, device(key), NOT_BEFORE + 10, IMAGE) == manifest()
    # The same security version is not a downgrade; the last valid second still is.
    assert judge(signed, device(key, security_version=3), NOT_AFTER - 1) == manifest()


def test_a_manifest_not_signed_by_a_carried_anchor_is_refused(
    key: SigningKey, other_key: SigningKey
) -> None:
    signed = sign_manifest(manifest(), other_key)
    assert reason(signed, device(key), NOT_BEFORE + 10) == Refusal.BAD_SIGNATURE
    # With both anchors on board it is accepted: the device tries each it carries.
    both = device(key, anchors=[key.public_key(), other_key.public_key()])
    assert verify(signed, both, NOT_BEFORE + 10, IMAGE).version == "2.1.0"


def test_a_changed_manifest_or_signature_fails_the_signature(key: SigningKey) -> None:
    signed = sign_manifest(manifest(), key)
    forged = SignedManifest(sign_manifest(manifest(hw=["A", "B", "C"]), key).body, signed.signature)
    assert reason(forged, device(key), NOT_BEFORE + 10) == Refusal.BAD_SIGNATURE
    flipped = signed.signature[:-1] + bytes([signed.signature[-1] ^ 1])
    assert reason(SignedManifest(signed.body, flipped), device(key), NOT_BEFORE) == "bad_signature"
    assert reason(SignedManifest(signed.body, b"\x00" * 10), device(key), NOT_BEFORE) == (
        "bad_signature"
    )


def test_an_image_that_does_not_match_the_manifest_is_refused(key: SigningKey) -> None:
    signed = sign_manifest(manifest(), key)
    tampered = IMAGE[:-1] + b"\x00"
    assert reason(signed, device(key), NOT_BEFORE + 1, tampered) == Refusal.HASH_MISMATCH
    assert reason(signed, device(key), NOT_BEFORE + 1, IMAGE + b"!") == Refusal.SIZE_MISMATCH


def test_another_hardware_revision_or_class_is_refused(key: SigningKey) -> None:
    signed = sign_manifest(manifest(hw=["A"]), key)
    assert reason(signed, device(key, hw="B"), NOT_BEFORE + 1) == Refusal.WRONG_HW
    assert reason(signed, device(key, hw="A", device_class="power-tool"), NOT_BEFORE + 1) == (
        Refusal.WRONG_CLASS
    )


def test_a_lower_security_version_is_a_downgrade(key: SigningKey) -> None:
    signed = sign_manifest(manifest(security_version=2), key)
    with pytest.raises(ManifestRefusedError, match=r"security version 2 is lower than .* 3"):
        verify(signed, device(key, security_version=3), NOT_BEFORE + 1, IMAGE)
    assert verify(signed, device(key, security_version=2), NOT_BEFORE + 1, IMAGE)


def test_validity_is_judged_at_the_given_time_not_the_machine_clock(
    key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = sign_manifest(manifest(), key)
    # The machine's clock is 12 hours off either way: it does not matter.
    for skew in (-12 * 3600, 12 * 3600):
        monkeypatch.setattr(time, "time", lambda skew=skew: NOT_BEFORE + skew)
        assert verify(signed, device(key), NOT_BEFORE + 60, IMAGE).version == "2.1.0"
    assert reason(signed, device(key), NOT_BEFORE - 1) == Refusal.NOT_YET_VALID
    assert reason(signed, device(key), NOT_AFTER) == Refusal.EXPIRED
    assert verify(signed, device(key), NOT_BEFORE, IMAGE)


def test_an_image_needing_a_trust_anchor_the_device_lacks_is_refused(key: SigningKey) -> None:
    new_ca = "sha256:" + "ab" * 32
    signed = sign_manifest(manifest(requires_trust=[new_ca]), key)
    with pytest.raises(ManifestRefusedError, match=new_ca) as info:
        verify(signed, device(key), NOT_BEFORE + 1, IMAGE)
    assert info.value.reason == Refusal.MISSING_TRUST
    assert verify(signed, device(key, trust=[new_ca, "other"]), NOT_BEFORE + 1, IMAGE)
    assert anchor_name(key.public_key()).startswith("sha256:")


def test_the_checks_come_in_order_signature_first(key: SigningKey, other_key: SigningKey) -> None:
    # Everything is wrong; a device reports the signature, since nothing else is trusted.
    signed = sign_manifest(manifest(hw=["Z"], security_version=0), other_key)
    refusal = judge(signed, device(key), NOT_AFTER + 1, b"junk")
    assert isinstance(refusal, ManifestRefusedError) and refusal.reason == "bad_signature"


def _resigned(key: SigningKey, body: bytes) -> SignedManifest:
    return SignedManifest(body, key.sign_digest(hashlib.sha256(body).digest()))


def test_malformed_manifests_are_refused_even_when_signed(key: SigningKey) -> None:
    good = manifest().to_json()
    bodies = [
        b"not json",
        b"[]",
        json.dumps(good, indent=1, sort_keys=True).encode(),  # not canonical
        json.dumps({**good, "extra": 1}, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps({**good, "size": "12"}, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps({**good, "size": 1.5}, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps({**good, "version": "v2"}, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps({**good, "delta_from": "2.0.0"}, sort_keys=True, separators=(",", ":")).encode(),
    ]
    for body in bodies:
        assert reason(_resigned(key, body), device(key), NOT_BEFORE + 1) == Refusal.MALFORMED
    missing = {k: v for k, v in good.items() if k != "not_after"}
    body = json.dumps(missing, sort_keys=True, separators=(",", ":")).encode()
    assert reason(_resigned(key, body), device(key), NOT_BEFORE + 1) == Refusal.MALFORMED


@pytest.mark.parametrize(
    "envelope",
    [
        b"",
        b"{}",
        b'{"manifest": "!!", "signature": ""}',
        b'{"manifest": 1, "signature": "AA=="}',
        b'{"manifest": "AA==", "signature": "AA==", "x": 1}',
    ],
)
def test_a_broken_envelope_is_malformed(envelope: bytes) -> None:
    with pytest.raises(ManifestRefusedError) as info:
        read_envelope(envelope)
    assert info.value.reason == "malformed"


def test_the_envelope_is_base64_of_the_signed_bytes(key: SigningKey) -> None:
    signed = sign_manifest(manifest(), key)
    doc = json.loads(signed.envelope())
    assert base64.b64decode(doc["manifest"]) == signed.body
    assert base64.b64decode(doc["signature"]) == signed.signature
