"""Child-process bodies for the multi-process stream tests (importable under spawn)."""

from __future__ import annotations

from typing import Any

from tether.stream import StreamEntry, open_stream


def append_keys(url: str, name: str, keys: list[str], batch: int, start: Any, out: Any) -> None:
    """Wait for ``start``, append ``keys`` uniquely in batches, report the slots on ``out``."""
    with open_stream(url, name) as stream:
        start.wait(timeout=60)
        slots: list[int | None] = []
        for i in range(0, len(keys), batch):
            entries = [StreamEntry(k, k.encode()) for k in keys[i : i + batch]]
            slots.extend(stream.append(entries, unique=True))
    out.put(slots)
