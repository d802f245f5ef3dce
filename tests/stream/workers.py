"""Child-process bodies for the multi-process stream tests (importable under spawn)."""

from __future__ import annotations

from typing import Any

from tether.stream import StreamEntry, open_stream


def append_keys(url: str, name: str, keys: list[str], batch: int, start: Any, out: Any) -> None:
    """Wait for ``start``, append ``keys`` uniquely in batches, report the slots on ``out``.

    A failure is reported on ``out`` too and breaks ``start``, so the test fails
    at once instead of waiting for a process that will never arrive.
    """
    try:
        with open_stream(url, name) as stream:
            start.wait(timeout=300)  # a cold start imports and compiles tether
            slots: list[int | None] = []
            for i in range(0, len(keys), batch):
                entries = [StreamEntry(k, k.encode()) for k in keys[i : i + batch]]
                slots.extend(stream.append(entries, unique=True))
    except BaseException as exc:
        start.abort()
        out.put(f"{type(exc).__name__}: {exc}")
        raise
    out.put(slots)
