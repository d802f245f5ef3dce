"""The bootloader's boot counter, the boot record, and images that declare defects."""

from __future__ import annotations

from tests.sim.ota.helpers import PLATFORM_NOW, device, full_update, images, new_key
from tether.sim.ota import BootRecord, ChunkSender, Defects, build_image, read_defects


def test_a_crash_during_boot_is_rolled_back_and_reported() -> None:
    key = new_key()
    old = build_image("1.0.0", 600)
    bad = build_image("1.1.0", 600, Defects(crash_at_boot=("B",)))
    dev = device(key, old, hw="B")
    ChunkSender(full_update(key, bad, "1.1.0").envelope, bad, PLATFORM_NOW).window(dev, 60.0)
    # The flip rebooted into slot B, which crashed; the watchdog keeps resetting.
    boot = dev.boot_until_up()
    crashed = [b for b in dev.boots if b.crashed]
    assert len(crashed) == 3 and all(b.slot == "B" for b in crashed)
    assert boot.slot == "A" and boot.version == "1.0.0"
    assert boot.record == BootRecord("1.0.0", "A", "1.1.0", rolled_back=True)
    assert boot.record.body() == {
        "fw": "1.0.0",
        "slot": "A",
        "previous_fw": "1.1.0",
        "rolled_back": True,
    }
    assert (boot.record.type, boot.record.v) == ("boot", 1)
    assert any(e.kind == "rolled_back" for e in dev.events)
    # Until the platform acknowledges it, every boot says so; afterwards, no longer.
    assert dev.power_on().record == boot.record
    dev.acknowledge()
    assert dev.power_on().record == BootRecord("1.0.0", "A", "1.1.0", rolled_back=False)


def test_the_same_image_boots_on_another_revision() -> None:
    key = new_key()
    old = build_image("1.0.0", 600)
    bad = build_image("1.1.0", 600, Defects(crash_at_boot=("B",)))
    dev = device(key, old, hw="A")
    ChunkSender(full_update(key, bad, "1.1.0").envelope, bad, PLATFORM_NOW).window(dev, 60.0)
    assert dev.record == BootRecord("1.1.0", "B", "1.0.0", rolled_back=False)
    dev.acknowledge()
    meta = dev.flash.meta
    assert (meta.active, meta.good, meta.pending, meta.version) == ("B", "B", None, "1.1.0")


def test_an_attestation_never_acknowledged_returns_to_the_old_slot() -> None:
    key = new_key()
    old, new = images()
    dev = device(key, old, max_boots=2)
    ChunkSender(full_update(key, new, "1.1.0").envelope, new, PLATFORM_NOW).window(dev, 60.0)
    assert dev.version == "1.1.0"
    assert dev.power_on().version == "1.1.0"  # the second boot of the trial
    boot = dev.power_on()
    assert boot.version == "1.0.0" and boot.record is not None and boot.record.rolled_back


def test_a_crash_after_good_is_not_a_rollback() -> None:
    """A slow crash after the slot was marked good: the boot counter cannot help (canary)."""
    key = new_key()
    old = build_image("1.0.0", 600)
    slow = build_image("1.1.0", 600, Defects(crash_after=(("B", 72.0),), fault_rate=4.0))
    dev = device(key, old, hw="B")
    ChunkSender(full_update(key, slow, "1.1.0").envelope, slow, PLATFORM_NOW).window(dev, 60.0)
    dev.acknowledge()
    assert dev.defects.crash_after_hours("B") == 72.0
    assert dev.defects.crash_after_hours("A") is None
    assert dev.defects.fault_multiplier("B") == 4.0
    boot = dev.crash()
    assert boot.version == "1.1.0" and boot.record is not None and not boot.record.rolled_back


def test_defects_travel_in_the_image() -> None:
    defects = Defects(
        crash_at_boot=("C",), crash_after=(("B", 70.5),), fault_rate=2.5, fault_hw=("B",)
    )
    image = build_image("2.0.0", 1000, defects)
    assert len(image) == 1000 and read_defects(image) == defects
    assert defects.fault_multiplier("A") == 1.0 and defects.crashes_at_boot("C")
    assert read_defects(b"\x7fELF real firmware") == Defects()
