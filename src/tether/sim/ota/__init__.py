"""The device side of firmware updates: the simulator's reference implementation.

One job per module:

- ``flash``: two slots and the persisted metadata, every write a step that power
  can fail at;
- ``bootloader``: the immutable chooser of the slot to boot, with the boot counter;
- ``receiver``: the contract's chunk receiver (ack, nack, retries, cursor);
- ``install``: verify, then commit (one atomic flip);
- ``record``: the ``boot`` attestation record;
- ``image``: simulated images and the defects they declare;
- ``device``: the device that ties them together;
- ``phone``: the phone relay that streams an image into a device across windows.
"""

from tether.sim.ota.bootloader import MAX_BOOTS, choose_slot
from tether.sim.ota.device import Accepted, Boot, Event, OtaDevice
from tether.sim.ota.flash import Flash, Meta, Power, PowerLoss, Slot, SlotInfo, Staging
from tether.sim.ota.image import NO_DEFECTS, Defects, build_image, read_defects
from tether.sim.ota.install import Committed, Refused, verify_then_commit
from tether.sim.ota.phone import ChunkSender, RelayLink, Window, relay
from tether.sim.ota.receiver import RETRIES, Ack, ChunkReceiver, Cursor, Nack, Paused
from tether.sim.ota.record import BootRecord

__all__ = [
    "MAX_BOOTS",
    "NO_DEFECTS",
    "RETRIES",
    "Accepted",
    "Ack",
    "Boot",
    "BootRecord",
    "ChunkReceiver",
    "ChunkSender",
    "Committed",
    "Cursor",
    "Defects",
    "Event",
    "Flash",
    "Meta",
    "Nack",
    "OtaDevice",
    "Paused",
    "Power",
    "PowerLoss",
    "Refused",
    "RelayLink",
    "Slot",
    "SlotInfo",
    "Staging",
    "Window",
    "build_image",
    "choose_slot",
    "read_defects",
    "relay",
    "verify_then_commit",
]
