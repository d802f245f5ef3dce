"""Durable, append-only, named streams with consumer offsets (the raw stream,
the accepted-event log, the dead-letter stream).

    from tether.stream import StreamEntry, open_stream

    with open_stream(settings.resolved_stream_url(), "events") as events:
        events.append([StreamEntry("SN1:42", payload)], unique=True)
"""

from tether.stream.base import ENGINES, StoredEntry, Stream, StreamEntry, open_stream

__all__ = ["ENGINES", "StoredEntry", "Stream", "StreamEntry", "open_stream"]
