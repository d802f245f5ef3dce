"""An append encodes each distinct set of headers once; every entry keeps its own."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tether.stream import StreamEntry, open_stream


def test_entries_sharing_headers_keep_their_own(tmp_path: Path) -> None:
    path = tmp_path / "stream.sqlite"
    stream = open_stream(f"sqlite:///{path}", "events")
    shapes = [
        {"serial": "A-1", "type": "health"},
        {"type": "health", "serial": "A-1"},  # the same, in another order
        {"serial": "A-2", "type": "health"},
        {"serial": "A-1", "type": "scan", "é": "ünï ✓"},
        {},
    ]
    entries = [StreamEntry(f"k{i}", b"x", shapes[i % len(shapes)]) for i in range(20)]
    stream.append(entries, unique=True)
    got = stream.read(0, 100)
    assert [dict(e.headers) for e in got] == [shapes[i % len(shapes)] for i in range(20)]
    stream.close()
    with sqlite3.connect(path) as conn:
        stored = [h for (h,) in conn.execute("SELECT headers FROM entries ORDER BY pos")]
    assert stored == [
        json.dumps(shapes[i % len(shapes)], sort_keys=True) if shapes[i % len(shapes)] else None
        for i in range(20)
    ]
