"""What a device refuses, and the near-misses of validity and trust: nothing flashed over."""

from __future__ import annotations

from tests.sim.ota.helpers import (
    DAY,
    PLATFORM_NOW,
    Update,
    device,
    full_update,
    images,
    new_key,
)
from tether.errors import ManifestRefusedError
from tether.firmware.manifest import read_envelope
from tether.firmware.verify import anchor_name, judge
from tether.sim.ota import ChunkSender, OtaDevice, Refused
from tether.sim.ota.install import identity


def deliver(dev: OtaDevice, update: Update, platform_time: int = PLATFORM_NOW) -> ChunkSender:
    sender = ChunkSender(update.envelope, update.data, platform_time)
    sender.window(dev, 3600.0)
    return sender


def untouched(dev: OtaDevice, old: bytes) -> None:
    meta = dev.flash.meta
    assert dev.version == "1.0.0" and meta.active == "A" and meta.pending is None
    assert dev.flash.read("A", len(old)) == old


def test_a_clock_twelve_hours_off_still_validates() -> None:
    """Validity is judged at the platform's time; the device's own clock plays no part."""
    key = new_key()
    old, new = images()
    # Valid from a minute before the platform's time: a device twelve hours behind
    # would call it not yet valid, one twelve hours ahead would call it expired.
    update = full_update(
        key, new, "1.1.0", not_before=PLATFORM_NOW - 60, not_after=PLATFORM_NOW + 6 * 3600
    )
    dev = device(key, old)
    signed = read_envelope(update.envelope)
    me = identity(dev.flash.meta, dev.hw, dev.device_class)
    for skew in (-12 * 3600, 12 * 3600):  # what the device's own clock would have said
        refused = judge(signed, me, PLATFORM_NOW + skew, new)
        assert isinstance(refused, ManifestRefusedError)
        assert refused.reason in {"not_yet_valid", "expired"}
    window = deliver(dev, update).windows[0]
    assert window.complete and window.refused is None
    dev.acknowledge()
    assert dev.version == "1.1.0"


def test_validity_is_the_platforms_time() -> None:
    key = new_key()
    old, new = images()
    update = full_update(key, new, "1.1.0", not_before=PLATFORM_NOW + DAY)
    dev = device(key, old)
    window = deliver(dev, update).windows[0]
    assert window.refused is not None and window.refused.reason == "not_yet_valid"
    window = deliver(dev, update, PLATFORM_NOW + 2 * DAY).windows[0]
    assert window.complete


def test_a_missing_trust_anchor_is_refused_until_the_device_holds_it() -> None:
    key = new_key()
    new_ca = new_key("ca-2027").public_key()
    old, new = images()
    update = full_update(key, new, "1.1.0", requires_trust=(anchor_name(new_ca),))
    dev = device(key, old)
    window = deliver(dev, update).windows[0]
    assert isinstance(window.refused, Refused) and window.refused.reason == "missing_trust"
    assert anchor_name(new_ca) in window.refused.detail
    assert dev.flash.meta.staging is None
    untouched(dev, old)
    holding = device(key, old, trust=(anchor_name(new_ca),))
    assert deliver(holding, update).windows[0].complete


def test_a_badly_signed_image_is_refused_as_a_security_event() -> None:
    key, forger = new_key(), new_key("forger")
    old, new = images()
    dev = device(key, old)
    window = deliver(dev, full_update(forger, new, "1.1.0")).windows[0]
    assert window.refused is not None and window.refused.reason == "bad_signature"
    assert window.sent == 0
    assert [e.security for e in dev.events if e.kind == "refused"] == [True]
    untouched(dev, old)


def test_an_image_substituted_after_the_offer_fails_its_hash() -> None:
    """The phone offers a good envelope and streams other bytes: refused after the transfer."""
    key = new_key()
    old, new = images()
    update = full_update(key, new, "1.1.0")
    evil = Update(update.envelope, new[:-1] + b"\x00", new, "1.1.0")
    dev = device(key, old)
    window = deliver(dev, evil).windows[0]
    assert window.complete
    refusals = [e for e in dev.events if e.kind == "refused"]
    assert refusals and refusals[0].detail.startswith("hash_mismatch")
    assert dev.flash.meta.staging is None
    untouched(dev, old)


def test_an_image_for_another_revision_is_refused() -> None:
    key = new_key()
    old, new = images()
    dev = device(key, old, hw="C")
    window = deliver(dev, full_update(key, new, "1.1.0", hw=("A", "B"))).windows[0]
    assert window.refused is not None and window.refused.reason == "wrong_hw"
    untouched(dev, old)


def test_a_downgrade_is_refused_and_equal_is_not() -> None:
    key = new_key()
    old, new = images()
    dev = device(key, old, security_version=5)
    window = deliver(dev, full_update(key, new, "1.1.0", security_version=4)).windows[0]
    assert window.refused is not None and window.refused.reason == "downgrade"
    untouched(dev, old)
    assert deliver(dev, full_update(key, new, "1.1.0", security_version=5)).windows[0].complete


def test_the_security_floor_rises_when_the_new_slot_is_marked_good() -> None:
    key = new_key()
    old, new = images()
    dev = device(key, old, security_version=1)
    deliver(dev, full_update(key, new, "1.1.0", security_version=3))
    assert dev.flash.meta.security_version == 1  # still on trial: the old slot may return
    dev.acknowledge()
    assert dev.flash.meta.security_version == 3
    window = deliver(dev, full_update(key, old, "1.0.1", security_version=2)).windows[0]
    assert window.refused is not None and window.refused.reason == "downgrade"


def test_no_new_update_while_one_is_on_trial() -> None:
    key = new_key()
    old, new = images()
    dev = device(key, old)
    deliver(dev, full_update(key, new, "1.1.0"))
    window = deliver(dev, full_update(key, new, "1.2.0")).windows[0]
    assert window.refused is not None and window.refused.reason == "busy"
