"""A device's flash: two firmware slots and one metadata record, with power that can fail.

Every persistent write is one step of a ``Power`` supply. A supply told to cut
at step ``k`` lets steps before ``k`` through and raises ``PowerLoss`` at step
``k``; from then on the power is off until ``Power.restore``. What was
persisted stays; RAM (everything outside this module) is lost.

- A metadata write is atomic: the record is replaced whole or not at all, as a
  real device does with two alternating sectors and a sequence number.
- A slot write is not: power lost during it leaves the first half of the bytes
  written (a torn write), which is why nothing is made bootable until it was
  hashed after the write.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

Slot = Literal["A", "B"]
SLOTS: tuple[Slot, Slot] = ("A", "B")


def other(slot: Slot) -> Slot:
    return "B" if slot == "A" else "A"


class PowerLoss(Exception):
    """Power was cut at a persistent write; the device is off."""


class Power:
    """Counts persistent writes and cuts the power at a chosen one."""

    def __init__(self, cut_at: int | None = None) -> None:
        self.steps = 0
        self.cut_at = cut_at
        self.on = True

    def step(self) -> None:
        """One persistent write is about to happen; PowerLoss if it does not."""
        if not self.on:
            raise PowerLoss("the device is off")
        if self.cut_at is not None and self.steps >= self.cut_at:
            self.on = False
            self.cut_at = None
            raise PowerLoss(f"power lost at write {self.steps}")
        self.steps += 1

    def restore(self) -> None:
        self.on = True


@dataclass(frozen=True)
class SlotInfo:
    """What the metadata says a slot holds."""

    version: str
    security_version: int
    size: int
    sha256: str


@dataclass(frozen=True)
class Staging:
    """A transfer into the inactive slot, as far as it was committed."""

    slot: Slot
    envelope: bytes  # the signed manifest it installs, as received
    platform_time: int  # the platform's time the offer carried; validity is judged at it
    payload: int  # bytes a chunk, fixed for the transfer
    size: int  # bytes the transfer carries (the image, or the patch for a delta)
    cursor: int = -1  # highest contiguous chunk committed; -1 before the first
    patching: bool = False  # a delta's result is being written over the patch


@dataclass(frozen=True)
class Meta:
    """The persisted metadata record. The bootloader reads it and nothing else."""

    active: Slot  # the slot that boots when nothing is pending
    slot_a: SlotInfo | None
    slot_b: SlotInfo | None
    security_version: int  # the device's floor: images below it are downgrades
    anchors: tuple[bytes, ...]  # firmware trust anchors, DER SubjectPublicKeyInfo
    trust: tuple[str, ...] = ()  # names of further trust anchors held (``requires_trust``)
    pending: Slot | None = None  # a new slot on trial
    boot_count: int = 0  # boots of the pending slot so far
    good: Slot | None = None  # the slot whose boot was attested and acknowledged
    staging: Staging | None = None
    previous_fw: str | None = None  # the version that ran before the last change of slot
    rolled_back: bool = False  # the last trial failed; told in boot records until acknowledged

    def info(self, slot: Slot) -> SlotInfo | None:
        return self.slot_a if slot == "A" else self.slot_b

    def with_info(self, slot: Slot, info: SlotInfo | None) -> Meta:
        if slot == "A":
            return dataclasses.replace(self, slot_a=info)
        return dataclasses.replace(self, slot_b=info)

    @property
    def version(self) -> str:
        """The version of the slot that boots when nothing is pending."""
        info = self.info(self.active)
        return info.version if info is not None else "none"


class Flash:
    """Two slots and a metadata record, every write a step of ``power``."""

    def __init__(self, slot_size: int, meta: Meta, power: Power | None = None) -> None:
        self.slot_size = slot_size
        self.power = power if power is not None else Power()
        self._slots: dict[Slot, bytearray] = {s: bytearray(slot_size) for s in SLOTS}
        self._meta = meta

    @property
    def meta(self) -> Meta:
        return self._meta

    def commit(self, meta: Meta) -> None:
        """Replace the metadata record: one atomic step."""
        self.power.step()
        self._meta = meta

    def write(self, slot: Slot, offset: int, data: bytes) -> None:
        """Write ``data`` into ``slot`` at ``offset``: one step, torn if the power fails."""
        if offset < 0 or offset + len(data) > self.slot_size:
            raise ValueError(
                f"{len(data)} bytes at {offset} do not fit a {self.slot_size}-byte slot"
            )
        was_on = self.power.on
        try:
            self.power.step()
        except PowerLoss:
            if not was_on:
                raise
            half = len(data) // 2
            self._slots[slot][offset : offset + half] = data[:half]
            raise
        self._slots[slot][offset : offset + len(data)] = data

    def read(self, slot: Slot, size: int, offset: int = 0) -> bytes:
        return bytes(self._slots[slot][offset : offset + size])
