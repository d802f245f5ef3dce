"""Replay: judge raw records again, to repair what a gate bug got wrong.

The raw stream keeps every record as it arrived. Replaying a range of it
through the (fixed) gate appends to the event log only the records it had not
accepted before; everything it already holds comes back ``duplicate``. Into an
empty log, a replay rebuilds the accepted events from scratch. Trust is judged
as it stands now: a device revoked since, or a bond ended since, is refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from tether.gate.pipeline import Gate
from tether.gate.submission import Submission
from tether.stream.base import Stream


def replay(
    raw: Stream,
    gate: Gate,
    start: int = 0,
    end: int | None = None,
    batch: int = 500,
    on_progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Judge raw entries with offsets in (start, end]; count the outcomes."""
    counts: Counter[str] = Counter()
    after = start
    last = raw.last_offset() if end is None else end
    while after < last:
        entries = [e for e in raw.read(after, batch) if e.offset <= last]
        if not entries:
            break
        outcomes = gate.process([Submission.from_entry(e) for e in entries])
        counts.update(o.outcome for o in outcomes)
        after = entries[-1].offset
        if on_progress is not None:
            on_progress(len(entries))
    return counts
