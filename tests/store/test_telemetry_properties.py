"""Fleets whose uploads are duplicated, re-drained and reordered, written in random batches.

The store always ends with exactly the distinct events, each once, and answers
``latest``/``seqs``/``range`` as a model computed from that set would.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.store.conftest import event
from tether.store.telemetry import TelemetryEvent, open_telemetry_store

SERIALS = ["SN-A", "SN-B", "SN-C"]


@st.composite
def uploads(draw: st.DrawFn) -> tuple[list[TelemetryEvent], list[list[TelemetryEvent]]]:
    genuine = {}
    for serial in SERIALS:
        for seq in draw(st.sets(st.integers(0, 40), max_size=15)):
            ts = draw(st.integers(0, 5_000))
            genuine[serial, seq] = event(serial, seq=seq, ts=ts, site=serial[-1])
    events = list(genuine.values())
    # Re-drains repeat events (a replay may carry a different corrected time).
    repeats = draw(st.lists(st.sampled_from(events), max_size=30)) if events else []
    replays = [
        event(e.serial, seq=e.seq, ts=e.ts + draw(st.integers(0, 3)), site=e.site) for e in repeats
    ]
    sent = draw(st.permutations(events + replays))
    cuts = sorted(draw(st.lists(st.integers(0, len(sent)), max_size=6)))
    batches = [sent[a:b] for a, b in zip([0, *cuts], [*cuts, len(sent)], strict=True)]
    return events, batches


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=uploads())
def test_each_event_once(
    telemetry_url: str, data: tuple[list[TelemetryEvent], list[list[TelemetryEvent]]]
) -> None:
    events, batches = data
    tenant = f"t{uuid.uuid4().hex[:10]}"  # a fresh tenant per example keeps examples apart
    with open_telemetry_store(telemetry_url) as store:
        before = store.count()
        serials = {s: f"{tenant}-{s}" for s in SERIALS}
        stored: dict[tuple[str, int | None], TelemetryEvent] = {}  # the first write wins
        for batch in batches:
            sent = [_retag(e, tenant, serials) for e in batch]
            for e, new in zip(sent, store.write(sent), strict=True):
                assert new == ((e.serial, e.seq) not in stored)
                stored.setdefault((e.serial, e.seq), e)
        assert len(stored) == len(events)
        assert store.count(tenant) == len(events)
        assert store.count() == before + len(events)
        for serial in serials.values():
            mine = [e for e in stored.values() if e.serial == serial]
            assert store.seqs(serial) == sorted(e.seq or 0 for e in mine)
            newest = sorted(mine, key=lambda e: (e.ts, e.seq), reverse=True)[:5]
            assert store.latest(serial, 5) == newest
        in_range = store.range(tenant, 1_000, 3_000, limit=10_000)
        expected = sorted(
            (e for e in stored.values() if 1_000 <= e.ts < 3_000),
            key=lambda e: (e.ts, e.serial, e.seq),
        )
        assert in_range == expected


def _retag(e: TelemetryEvent, tenant: str, serials: dict[str, str]) -> TelemetryEvent:
    """The event under this example's tenant and serials."""
    return event(serials[e.serial], seq=e.seq, ts=e.ts, tenant=tenant, site=e.site, body=e.body)
