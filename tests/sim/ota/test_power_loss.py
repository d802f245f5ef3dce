"""Power lost at every persistent write of an update: old or new, never neither, and it boots."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.sim.ota.helpers import (
    PLATFORM_NOW,
    Update,
    delta_update,
    device,
    full_update,
    images,
    new_key,
)
from tether.keys.keyfile import FileSigningKey
from tether.sim.ota import ChunkSender, OtaDevice, Power, PowerLoss, RelayLink


def update_to_the_end(dev: OtaDevice, update: Update) -> None:
    """Everything from the offer to the acknowledged boot of the new version."""
    sender = ChunkSender(update.envelope, update.data, PLATFORM_NOW, RelayLink(payload=20))
    for _ in range(8):
        if dev.flash.meta.pending is None and dev.version == update.version:
            break
        if dev.record is not None:
            dev.acknowledge()
            continue
        sender.window(dev, 3600.0)
    if dev.record is not None:
        dev.acknowledge()


def sweep(key: FileSigningKey, old: bytes, make: Callable[[], Update]) -> int:
    update = make()
    clean = device(key, old, power=Power())
    before = clean.flash.power.steps
    update_to_the_end(clean, update)
    assert clean.version == update.version
    steps = clean.flash.power.steps - before
    assert steps > 10
    for cut in range(steps):
        power = Power()
        dev = device(key, old, power=power)
        power.cut_at = power.steps + cut
        with pytest.raises(PowerLoss):
            update_to_the_end(dev, update)
        # Power comes back: the immutable bootloader runs over whatever was persisted.
        boot = dev.boot_until_up()
        assert boot.version in {"1.0.0", update.version}, f"cut at write {cut}"
        assert dev.version in {"1.0.0", update.version}
        assert boot.record is not None
        # And the update still converges once the phone comes back.
        update_to_the_end(dev, update)
        assert dev.version == update.version, f"cut at write {cut}"
        assert dev.flash.meta.pending is None
        assert dev.flash.meta.good == dev.running
    return steps


def test_power_loss_sweep_full_image() -> None:
    key = new_key()
    old, new = images(600)
    steps = sweep(key, old, lambda: full_update(key, new, "1.1.0"))
    assert steps >= 2 * 30  # a write and a cursor per chunk, then the flip and the boot


def test_power_loss_sweep_delta() -> None:
    key = new_key()
    old, new = images(9000)  # more than two flash pages of result
    steps = sweep(key, old, lambda: delta_update(key, old, "1.0.0", new, "1.1.0"))
    assert steps > 5


def test_a_torn_result_is_never_booted() -> None:
    """Power lost while a delta's result is written: the transfer starts over, 1.0.0 runs."""
    key = new_key()
    old, new = images(9000)
    update = delta_update(key, old, "1.0.0", new, "1.1.0")
    power = Power()
    dev = device(key, old, power=power)
    sender = ChunkSender(update.envelope, update.data, PLATFORM_NOW)
    count = sender.count
    # 2 writes per chunk, one to mark the patching, then the first page of the result.
    power.cut_at = power.steps + 2 * count + 1 + 1
    with pytest.raises(PowerLoss):
        sender.window(dev, 3600.0)
    boot = dev.boot_until_up()
    assert boot.version == "1.0.0"
    assert dev.flash.meta.staging is not None and dev.flash.meta.staging.patching
    window = sender.window(dev, 3600.0)
    assert window.resumed_from == -1 and window.complete
    dev.acknowledge()
    assert dev.version == "1.1.0"
