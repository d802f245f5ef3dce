"""Simulated firmware images, and the defects an image can declare.

A real image's faults are found in the field; a simulated one states them, so a
rollout can be tested against a known-bad build. The statement is part of the
image's bytes (a short header before deterministic filler), so it travels with
the image through the blob store, the manifest's hash, deltas and the chunk
stream, and the device learns it only by booting what it installed.

An image without the header declares no defects.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

MAGIC = b"TETHER-SIM-FW1\n"


@dataclass(frozen=True)
class Defects:
    """What goes wrong with an image, per hardware revision."""

    crash_at_boot: tuple[str, ...] = ()  # revisions on which it crashes before attesting
    crash_after: tuple[tuple[str, float], ...] = ()  # (revision, hours after boot it crashes)
    fault_rate: float = 1.0  # multiplier on the device's usual fault rate
    fault_hw: tuple[str, ...] = ()  # the revisions the multiplier applies to; () is all

    def crashes_at_boot(self, hw: str) -> bool:
        return hw in self.crash_at_boot

    def crash_after_hours(self, hw: str) -> float | None:
        """Hours after a boot at which the image crashes on ``hw``; None if it does not."""
        hours = [h for rev, h in self.crash_after if rev == hw]
        return min(hours) if hours else None

    def fault_multiplier(self, hw: str) -> float:
        if not self.fault_hw or hw in self.fault_hw:
            return self.fault_rate
        return 1.0

    def to_json(self) -> dict[str, object]:
        return {
            "crash_at_boot": list(self.crash_at_boot),
            "crash_after": [[rev, hours] for rev, hours in self.crash_after],
            "fault_rate": self.fault_rate,
            "fault_hw": list(self.fault_hw),
        }


NO_DEFECTS = Defects()


def build_image(version: str, size: int, defects: Defects = NO_DEFECTS, *, seed: int = 0) -> bytes:
    """An image of exactly ``size`` bytes for ``version`` declaring ``defects``.

    The filler after the header depends on ``seed`` only, so two versions built
    with the same seed differ in a few bytes and their bsdiff4 patch is small.
    """
    header = (
        MAGIC
        + json.dumps({"version": version, "defects": defects.to_json()}, sort_keys=True).encode()
    )
    header += b"\n"
    if size < len(header):
        raise ValueError(f"an image declaring this needs at least {len(header)} bytes")
    return header + random.Random(seed).randbytes(size - len(header))


def read_defects(image: bytes) -> Defects:
    """The defects ``image`` declares; none for an image without the header."""
    if not image.startswith(MAGIC):
        return NO_DEFECTS
    end = image.find(b"\n", len(MAGIC))
    try:
        doc = json.loads(image[len(MAGIC) : end])["defects"]
        return Defects(
            crash_at_boot=tuple(str(rev) for rev in doc["crash_at_boot"]),
            crash_after=tuple((str(rev), float(hours)) for rev, hours in doc["crash_after"]),
            fault_rate=float(doc["fault_rate"]),
            fault_hw=tuple(str(rev) for rev in doc["fault_hw"]),
        )
    except (ValueError, KeyError, TypeError):
        return NO_DEFECTS
