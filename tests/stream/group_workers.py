"""Child-process body for the work-group tests (importable under spawn)."""

from __future__ import annotations

import time

from tether.stream import StreamEntry, open_stream
from tether.stream.group import open_group


def work(url: str, lease: float, pause: float) -> None:
    """Claim entries of ``in``, copy each to ``out`` under its key (unique), ack; forever.

    ``pause`` is spent between the copy and the ack, so a worker killed at a random
    moment often dies holding copied but unacknowledged entries.
    """
    with (
        open_group(url, "in", "copiers", lease_seconds=lease) as group,
        open_stream(url, "out") as out,
    ):
        while True:
            entries = group.claim(10)
            if not entries:
                time.sleep(0.02)
                continue
            out.append([StreamEntry(e.key, e.data) for e in entries], unique=True)
            time.sleep(pause)
            group.ack(e.offset for e in entries)
