"""What every telemetry store engine must do: the port's contract, method by method."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from tests.store import workers
from tests.store.conftest import event
from tether.errors import EngineError
from tether.store.telemetry import TelemetryEvent, TelemetryStore, open_telemetry_store


def keys(events: list[TelemetryEvent]) -> list[tuple[str, str]]:
    return [(e.serial, e.dedupe_key) for e in events]


def test_write_is_idempotent_on_serial_and_dedupe_key(store: TelemetryStore) -> None:
    assert store.write([]) == []
    assert store.write([event(seq=1), event(seq=2), event("SN2", seq=1)]) == [True] * 3
    # Already stored, repeated within the call, or replayed with another corrected time.
    again = [event(seq=2), event(seq=3), event(seq=3), event(seq=1, ts=9_999)]
    assert store.write(again) == [False, True, False, False]
    assert store.count() == 4
    assert store.seqs("SN1") == [1, 2, 3]


def test_every_field_round_trips(store: TelemetryStore) -> None:
    original = event(
        "SN9",
        seq=None,
        dedupe_key="evt-7f3a",
        site=None,
        fw=None,
        clock_corrected=True,
        device_ts=5,
        ts=1_700_000_000_123,
        arrival=1_700_000_000_456,
        v=3,
        type="telemetry",
        body={"rpm": 1200, "nested": {"ok": True, "xs": [1, 2.5, None]}, "note": "ünï ✓"},
    )
    store.write([original])
    assert store.latest("SN9") == [original]
    assert store.by_device("SN9", 0, 2**62) == [original]


def test_latest_is_newest_first_by_ts_then_seq(store: TelemetryStore) -> None:
    events = [event(seq=s, ts=t) for s, t in [(1, 100), (2, 300), (3, 200), (4, 300), (5, 50)]]
    events.append(event("SN2", seq=9, ts=1_000))
    store.write(events)
    assert [e.seq for e in store.latest("SN1")] == [4, 2, 3, 1, 5]
    assert [e.seq for e in store.latest("SN1", limit=2)] == [4, 2]
    assert store.latest("nobody") == []
    with pytest.raises(ValueError):
        store.latest("SN1", limit=0)


def test_events_without_seq_order_after_and_before(store: TelemetryStore) -> None:
    store.write(
        [
            event(seq=None, dedupe_key="b", ts=100),
            event(seq=None, dedupe_key="a", ts=100),
            event(seq=7, ts=100),
            event(seq=None, dedupe_key="c", ts=200),
        ]
    )
    ascending = [e.dedupe_key for e in store.by_device("SN1", 0, 1_000)]
    assert ascending == ["a", "b", "7", "c"]
    assert [e.dedupe_key for e in store.latest("SN1")] == ascending[::-1]
    assert store.seqs("SN1") == [7]


def test_by_device_is_a_half_open_time_range(store: TelemetryStore) -> None:
    store.write([event(seq=s, ts=s * 10) for s in range(1, 21)])
    store.write([event("SN2", seq=s, ts=s * 10) for s in range(1, 5)])
    got = store.by_device("SN1", 50, 100)
    assert [e.ts for e in got] == [50, 60, 70, 80, 90]
    assert [e.seq for e in store.by_device("SN1", 0, 1_000, limit=3)] == [1, 2, 3]
    assert store.by_device("SN1", 1_000, 2_000) == []


def fleet() -> list[TelemetryEvent]:
    out = []
    for n, (tenant, cls, site) in enumerate(
        [
            ("acme", "retail-cart", "store-1"),
            ("acme", "retail-cart", "store-2"),
            ("acme", "power-tool", "store-1"),
            ("acme", "oral-care-brush", None),
            ("globex", "retail-cart", "store-1"),  # same site name, other tenant
        ]
    ):
        serial = f"SN{n}"
        for seq in range(1, 6):
            out.append(
                event(serial, seq=seq, ts=seq * 100, tenant=tenant, device_class=cls, site=site)
            )
    return out


def test_range_by_site_class_or_tenant(store: TelemetryStore) -> None:
    store.write(fleet())
    by_site = store.range("acme", 0, 10_000, site="store-1")
    assert {e.serial for e in by_site} == {"SN0", "SN2"}
    assert [e.ts for e in by_site] == sorted(e.ts for e in by_site)
    assert [(e.ts, e.serial) for e in by_site[:4]] == [
        (100, "SN0"),
        (100, "SN2"),
        (200, "SN0"),
        (200, "SN2"),
    ]
    by_class = store.range("acme", 0, 10_000, device_class="retail-cart")
    assert {e.serial for e in by_class} == {"SN0", "SN1"}
    both = store.range("acme", 0, 10_000, device_class="power-tool", site="store-1")
    assert {e.serial for e in both} == {"SN2"}
    tenant = store.range("acme", 200, 400)
    assert {e.serial for e in tenant} == {"SN0", "SN1", "SN2", "SN3"}
    assert {e.ts for e in tenant} == {200, 300}
    assert len(store.range("acme", 0, 10_000, limit=3)) == 3
    # Tenants never see each other's events, even on a site of the same name.
    assert {e.tenant for e in store.range("globex", 0, 10_000, site="store-1")} == {"globex"}
    assert store.range("initech", 0, 10_000) == []
    with pytest.raises(ValueError):
        store.range("acme", 0, 10, limit=-1)


def test_count_and_seqs(store: TelemetryStore) -> None:
    assert store.count() == 0
    store.write(fleet())
    store.write([event("SN0", seq=s, ts=s) for s in (40, 12, 9)])
    assert store.count() == 28
    assert store.count("acme") == 23
    assert store.count("globex") == 5
    assert store.count("initech") == 0
    assert store.seqs("SN0") == [1, 2, 3, 4, 5, 9, 12, 40]
    assert store.seqs("nobody") == []


def test_delete_before_is_retention(store: TelemetryStore) -> None:
    store.write(fleet())
    assert store.delete_before(300) == 10  # ts 100 and 200 of five devices
    assert store.count() == 15
    assert min(e.ts for e in store.range("acme", 0, 10_000)) == 300
    assert store.seqs("SN4") == [3, 4, 5]
    assert store.delete_before(300) == 0
    assert store.delete_before(10_000) == 15
    assert store.count() == 0


def test_durable_across_close_and_reopen(telemetry_url: str) -> None:
    with open_telemetry_store(telemetry_url) as store:
        store.write([event(seq=1), event(seq=2)])
    with open_telemetry_store(telemetry_url) as store:
        assert store.seqs("SN1") == [1, 2]
        assert store.write([event(seq=2), event(seq=3)]) == [False, True]


def test_a_closed_store_says_so(telemetry_url: str) -> None:
    store = open_telemetry_store(telemetry_url)
    store.close()
    store.close()
    with pytest.raises(EngineError, match="closed"):
        store.write([event()])
    with pytest.raises(EngineError, match="closed"):
        store.latest("SN1")


def replayed(n_devices: int, n_seq: int) -> list[TelemetryEvent]:
    return [
        event(f"SN{d}", seq=s, ts=1_000 * s + d) for s in range(n_seq) for d in range(n_devices)
    ]


def test_exactly_once_under_concurrent_threads(telemetry_url: str) -> None:
    events = replayed(20, 50)
    stores = [open_telemetry_store(telemetry_url) for _ in range(2)]
    inserted = [0, 0]
    start = threading.Barrier(3)

    def run(n: int) -> None:
        order = events if n == 0 else events[::-1]
        start.wait()
        for i in range(0, len(order), 40):
            inserted[n] += sum(stores[n].write(order[i : i + 40]))

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join()
    try:
        assert sum(inserted) == len(events)
        assert stores[0].count() == len(events)
        assert stores[1].seqs("SN3") == list(range(50))
    finally:
        for s in stores:
            s.close()


def test_exactly_once_under_concurrent_processes(telemetry_url: str) -> None:
    events = replayed(30, 40)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=workers.write_events, args=(telemetry_url, order, batch, start, out))
        for order, batch in ((events, 50), (events[::-1], 70))
    ]
    for p in procs:
        p.start()
    inserted = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sum(inserted) == len(events)
    with open_telemetry_store(telemetry_url) as store:
        assert store.count() == len(events)
        assert all(store.seqs(f"SN{d}") == list(range(40)) for d in range(30))
