"""The boot attestation record of the contract (section 10): type ``boot``, v 1."""

from __future__ import annotations

from dataclasses import dataclass

from tether.sim.ota.flash import Slot

TYPE = "boot"
VERSION = 1


@dataclass(frozen=True)
class BootRecord:
    fw: str  # the version that booted
    slot: Slot
    previous_fw: str | None  # the version before the last change of slot
    rolled_back: bool  # the bootloader gave up on a new slot and returned to this one

    type: str = TYPE
    v: int = VERSION

    def body(self) -> dict[str, object]:
        return {
            "fw": self.fw,
            "slot": self.slot,
            "previous_fw": self.previous_fw,
            "rolled_back": self.rolled_back,
        }
