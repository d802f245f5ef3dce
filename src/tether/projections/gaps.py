"""Gaps in a device's sequence numbers: lost (overwritten on the device) or pending.

A device's flash ring keeps records from ``lowest_seq_held`` upward (its last
hello says so). A sequence number below that which never arrived can no longer
arrive: it is lost. One at or above it may still come on a later sync: pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Gaps:
    lost: list[tuple[int, int]]  # inclusive ranges
    pending: list[tuple[int, int]]

    @property
    def lost_count(self) -> int:
        return sum(b - a + 1 for a, b in self.lost)

    @property
    def pending_count(self) -> int:
        return sum(b - a + 1 for a, b in self.pending)


def _split(
    start: int, end: int, boundary: int | None
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    if boundary is None or boundary <= start:
        return [], [(start, end)]
    if boundary > end:
        return [(start, end)], []
    return [(start, boundary - 1)], [(boundary, end)]


def find_gaps(seqs: Sequence[int], lowest_seq_held: int | None, first: int = 1) -> Gaps:
    """Gaps in sorted, distinct ``seqs`` from ``first`` to the highest seen."""
    lost: list[tuple[int, int]] = []
    pending: list[tuple[int, int]] = []
    expected = first
    for seq in seqs:
        if seq > expected:
            lo, pe = _split(expected, seq - 1, lowest_seq_held)
            lost += lo
            pending += pe
        expected = max(expected, seq + 1)
    if lowest_seq_held is not None and lowest_seq_held > expected:
        lost.append((expected, lowest_seq_held - 1))  # overwritten before any of it arrived
    return Gaps(lost, pending)
