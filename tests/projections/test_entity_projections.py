"""Device state and the reject log, the projections kept in the entity store, on each engine.

Both fold batches idempotently; on PostgreSQL several processes may project at
once, so concurrent applications must neither fail nor lose an update.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pg import ENTITY_ENGINES, entity_data_dir
from tether.classes.catalog import ClassRuntime, load_catalog
from tether.gate.submission import AcceptedEvent
from tether.projections.rejects import RejectLog
from tether.projections.state import DeviceStateStore
from tether.registry.sql import SqlRegistry
from tether.settings import load_settings
from tether.stream.base import StreamEntry, open_stream


@pytest.fixture(params=ENTITY_ENGINES)
def entity_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with entity_data_dir(request, tmp_path / "tether") as data_dir:
        settings = load_settings(
            {"data_dir": str(data_dir)}, config_file=data_dir / "engines.toml", environ={}
        )
        yield settings.resolved_entity_url()


@pytest.fixture(scope="module")
def runtimes() -> dict[str, ClassRuntime]:
    return {r.name: r for r in load_catalog([])}


def accepted(serial: str, seq: int, type_: str = "hello", **body: Any) -> AcceptedEvent:
    return AcceptedEvent(
        tenant="acme",
        serial=serial,
        device_class="retail-cart",
        dedupe_key=str(seq),
        seq=seq,
        type=type_,
        v=1,
        device_ts=seq,
        ts=seq,
        arrival=1_000 + seq,
        clock_corrected=False,
        door="mqtt",
        body=body,
    )


def hello(serial: str, seq: int, fw: str) -> AcceptedEvent:
    return accepted(serial, seq, fw=fw, hw="3", capabilities=["identify", "nonsense"])


def test_device_state_folds_idempotently_and_out_of_order(
    entity_url: str, runtimes: dict[str, ClassRuntime]
) -> None:
    store = DeviceStateStore(entity_url)
    try:
        batch = [
            hello("SN1", 5, "2.0"),
            hello("SN1", 3, "1.0"),
            accepted("SN2", 1, "boot", fw="9\x00"),
        ]
        store.apply(batch, runtimes)
        store.apply(batch[::-1], runtimes)  # the same events again, reversed
        one = store.get("SN1")
        assert one is not None
        assert (one.fw, one.hw, one.hello_seq, one.last_seen) == ("2.0", "3", 5, 1_005)
        assert one.announced == ["identify", "nonsense"]
        assert "nonsense" not in one.agreed
        two = store.get("SN2")
        assert two is not None and (two.fw, two.boot_seq) == ("9\ufffd", 1)
        assert set(store.many(["SN1", "SN2", "SN3"])) == {"SN1", "SN2"}
        assert store.get("SN3") is None
    finally:
        store.close()


def test_device_state_keeps_class_and_latest_site(
    entity_url: str, runtimes: dict[str, ClassRuntime]
) -> None:
    store = DeviceStateStore(entity_url)
    try:
        moved = [
            accepted("SN1", 2, "health", store="store-b"),
            accepted("SN1", 1, "health", store="store-a"),  # older: the site stays
            accepted("SN1", 3, "health"),  # no site named: the site stays
        ]
        store.apply(moved, runtimes)
        one = store.get("SN1")
        assert one is not None
        assert (one.device_class, one.site, one.last_seen) == ("retail-cart", "store-b", 1_003)
    finally:
        store.close()


def test_old_embedded_entity_store_gains_new_columns(
    tmp_path: Path, runtimes: dict[str, ClassRuntime]
) -> None:
    """A SQLite entity store made before device_state had class and site opens and upgrades."""
    import sqlite3

    path = tmp_path / "entity.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE device_state (serial VARCHAR(64) PRIMARY KEY, tenant VARCHAR(64) "
            "NOT NULL, fw VARCHAR(32), hw VARCHAR(32), announced TEXT NOT NULL, agreed TEXT "
            "NOT NULL, lowest_seq_held BIGINT, hello_seq BIGINT, boot_seq BIGINT, "
            "last_seen BIGINT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO device_state VALUES ('SN9','acme','1.0',NULL,'[]','[]',NULL,NULL,NULL,7)"
        )
    store = DeviceStateStore(f"sqlite:///{path}")
    try:
        old = store.get("SN9")
        assert old is not None and (old.fw, old.device_class, old.site) == ("1.0", None, None)
        store.apply([accepted("SN9", 1, "health", store="north")], runtimes)
        new = store.get("SN9")
        assert new is not None and (new.device_class, new.site) == ("retail-cart", "north")
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(device_state)")}
    assert "ix_device_state_seen" in indexes


def test_concurrent_appliers_lose_no_update(
    entity_url: str, runtimes: dict[str, ClassRuntime]
) -> None:
    stores = [DeviceStateStore(entity_url) for _ in range(2)]
    errors: list[BaseException] = []
    serials = [f"SN{n}" for n in range(8)]

    def run(n: int) -> None:
        try:
            for seq in range(n, 40, 2):  # one writer the even seqs, the other the odd
                stores[n].apply([hello(s, seq, f"fw{seq}") for s in serials], runtimes)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        final = stores[0].many(serials)
        assert {(s.fw, s.hello_seq, s.last_seen) for s in final.values()} == {("fw39", 39, 1_039)}
    finally:
        for s in stores:
            s.close()


def test_reject_log_projects_each_dead_letter_once(entity_url: str, tmp_path: Path) -> None:
    dead = open_stream(f"sqlite:///{tmp_path / 'stream.sqlite'}", "dead-letter")
    registry = SqlRegistry(entity_url)
    state = DeviceStateStore(entity_url)
    logs = [RejectLog(entity_url, dead, registry, state) for _ in range(2)]
    try:
        long_serial = "X" * 200  # a refused record may name anything
        dead.append(
            [
                StreamEntry(None, b"{}", {"serial": "SN1", "code": "bad_signature", "seq": "4"}),
                StreamEntry(None, b"{}", {"serial": long_serial, "code": "unknown_device"}),
                StreamEntry(
                    None,
                    b"{}",
                    {"serial": "SN1", "code": "schema", "detail": "a\x00b", "door": "https"},
                ),
            ]
        )
        assert logs[0].run_once() == 3
        dead.reset("rejects", 0)  # projected again, by another process
        assert logs[1].run_once() == 3
        recent = logs[0].recent("SN1")
        assert [(r.offset, r.code, r.seq) for r in recent] == [
            (3, "schema", None),
            (1, "bad_signature", 4),
        ]
        assert recent[0].detail == "a\ufffdb"  # PostgreSQL text cannot hold NUL
        assert logs[1].recent("X" * 64)[0].code == "unknown_device"
        counts = {(c.code, c.count) for c in logs[0].counts()}
        assert counts == {("bad_signature", 1), ("unknown_device", 1), ("schema", 1)}
    finally:
        for log in logs:
            log.close()
        state.close()
        registry.close()
        dead.close()
