"""The PostgreSQL engine's own promises: partitions by day made ahead and on demand,
retention by dropping partitions, migrations first, clear errors when the server is away."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from collections.abc import Iterator

import psycopg
import pytest

from tests.pg import fresh_database
from tests.store import workers
from tests.store.conftest import event
from tether.errors import EngineError, MigrationRequiredError
from tether.store import migrations
from tether.store.telemetry import open_telemetry_store
from tether.store.telemetry.postgres import (
    AHEAD_DAYS,
    DAY_MS,
    PostgresTelemetryStore,
    partition_name,
)
from tether.testing import PostgresInstance, free_port

NOW = dt.datetime(2026, 3, 19, 15, 30, tzinfo=dt.UTC).timestamp()
NOW_MS = int(NOW * 1000)
TODAY = NOW_MS // DAY_MS


@pytest.fixture
def url(postgres: PostgresInstance) -> Iterator[str]:
    with fresh_database(postgres, migrations.TELEMETRY) as made:
        yield made


@pytest.fixture
def store(url: str) -> Iterator[PostgresTelemetryStore]:
    opened = PostgresTelemetryStore(url, clock=lambda: NOW)
    yield opened
    opened.close()


def days(store: PostgresTelemetryStore) -> list[int]:
    return [p.day for p in store.partitions() if p.day is not None]


def sql(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_both_schemes_open_the_engine(url: str) -> None:
    for scheme in ("postgresql", "postgresql+psycopg"):
        with open_telemetry_store(scheme + url.removeprefix("postgresql")) as opened:
            assert isinstance(opened, PostgresTelemetryStore)
            assert opened.count() == 0


def test_opening_makes_the_days_ahead(store: PostgresTelemetryStore) -> None:
    assert days(store) == list(range(TODAY - 1, TODAY + AHEAD_DAYS + 1))
    names = [p.name for p in store.partitions()]
    assert names[0] == "telemetry_before_year_1" and names[-1] == "telemetry_from_year_10000"
    assert partition_name(TODAY) == "telemetry_p20260319" in names
    # Each partition carries the partitioned indexes, and there is no DEFAULT partition.
    indexes = sql(
        store.url, "SELECT indexdef FROM pg_indexes WHERE tablename = 'telemetry_p20260319'"
    )
    assert len(indexes) == 4
    assert any("(serial, ts DESC, seq DESC NULLS LAST, dedupe_key DESC)" in i for (i,) in indexes)
    assert sql(store.url, "SELECT count(*) FROM pg_partitioned_table WHERE partdefid <> 0") == [
        (0,)
    ]


def test_a_later_open_tops_up_without_duplicating(url: str, store: PostgresTelemetryStore) -> None:
    later = PostgresTelemetryStore(url, clock=lambda: NOW + 3 * 86_400)
    try:
        assert days(later) == list(range(TODAY - 1, TODAY + AHEAD_DAYS + 4))
    finally:
        later.close()


def test_late_and_far_past_events_land_in_partitions_made_for_them(
    store: PostgresTelemetryStore,
) -> None:
    week_late = (TODAY - 9) * DAY_MS + 5
    reset_clock = 12_345  # 1970-01-01, a device whose clock the gate could not correct
    ancient = -70_000_000_000_000  # before the year 1: the outer partition
    far_future = 300_000_000_000_000  # after the year 9999: the other outer partition
    sent = [
        event(seq=1, ts=week_late),
        event(seq=2, ts=reset_clock),
        event(seq=3, ts=ancient),
        event(seq=4, ts=far_future),
        event(seq=5, ts=NOW_MS),
    ]
    assert store.write(sent) == [True] * 5
    made = days(store)
    assert TODAY - 9 in made and 0 in made
    assert [e.seq for e in store.latest("SN1")] == [4, 5, 1, 2, 3]
    assert [e.seq for e in store.by_device("SN1", -(2**62), 2**62)] == [3, 2, 1, 5, 4]
    assert store.by_device("SN1", 0, DAY_MS) == [sent[1]]
    rows = sql(store.url, "SELECT tableoid::regclass::text, seq FROM telemetry ORDER BY seq")
    assert rows == [
        ("telemetry_p20260310", 1),
        ("telemetry_p19700101", 2),
        ("telemetry_before_year_1", 3),
        ("telemetry_from_year_10000", 4),
        ("telemetry_p20260319", 5),
    ]


def test_nul_in_device_text_is_stored_as_a_replacement_character(
    store: PostgresTelemetryStore,
) -> None:
    odd = event(
        "SN\x00", seq=None, dedupe_key="k\x00", site="s\x00", fw="1\x00", body={"x": "\x00"}
    )
    assert store.write([odd, event("SN\x00", seq=None, dedupe_key="k\x00")]) == [True, False]
    (got,) = store.latest("SN\x00")
    assert (got.serial, got.dedupe_key, got.site, got.fw) == (
        "SN\ufffd",
        "k\ufffd",
        "s\ufffd",
        "1\ufffd",
    )
    assert got.body == {"x": "\x00"}  # bodies are JSON: the NUL is escaped, and kept
    assert store.range("acme", 0, 2**62, site="s\x00") == [got]


def test_identity_holds_across_partitions(store: PostgresTelemetryStore) -> None:
    assert store.write([event(seq=1, ts=NOW_MS)]) == [True]
    # The same event replayed with a corrected time days away: still a duplicate.
    assert store.write([event(seq=1, ts=NOW_MS - 40 * DAY_MS), event(seq=2, ts=5)]) == [
        False,
        True,
    ]
    assert store.count() == 2
    assert sql(store.url, "SELECT count(*) FROM event_keys") == [(2,)]


def test_retention_drops_whole_days_and_trims_the_straddling_one(
    store: PostgresTelemetryStore,
) -> None:
    sent = [event(seq=d, ts=(TODAY - d) * DAY_MS + 3_600_000) for d in range(10)]
    sent += [event(seq=100 + h, ts=(TODAY - 5) * DAY_MS + h * 3_600_000) for h in range(24)]
    store.write(sent)
    cut = (TODAY - 5) * DAY_MS + 12 * 3_600_000  # noon, five days ago
    before = set(days(store))
    assert store.delete_before(cut) == 4 + 12 + 1  # days 6..9, the morning of day 5 (and d=5)
    after = set(days(store))
    assert before - after == {TODAY - 9, TODAY - 8, TODAY - 7, TODAY - 6}
    assert TODAY - 5 in after  # straddles the cut: kept, trimmed
    assert min(e.ts for e in store.by_device("SN1", 0, 2**62)) >= cut
    assert store.count() == len(sent) - 17
    assert sql(store.url, "SELECT count(*) FROM event_keys") == [(len(sent) - 17,)]
    assert not sql(store.url, "SELECT relname FROM pg_class WHERE relname LIKE 'telemetry_ret%'")
    # Like the SQLite engine, a deleted event's identity goes with it; a dropped day
    # comes back when an event needs it.
    assert store.write([event(seq=9, ts=(TODAY - 9) * DAY_MS)]) == [True]
    assert TODAY - 9 in days(store)


def test_retention_finishes_a_partition_an_interrupted_run_detached(
    store: PostgresTelemetryStore,
) -> None:
    store.write([event(seq=s, ts=(TODAY - 3) * DAY_MS + s) for s in range(5)])
    name = partition_name(TODAY - 3)
    with psycopg.connect(store.url, autocommit=True) as conn:  # the run died here
        conn.execute(f"ALTER TABLE telemetry DETACH PARTITION {name}")
        conn.execute(f"ALTER TABLE {name} RENAME TO telemetry_retired_{name[10:]}")
    assert store.count() == 0
    assert store.delete_before(0) == 5
    assert sql(store.url, "SELECT count(*) FROM event_keys") == [(0,)]
    assert not sql(store.url, "SELECT relname FROM pg_class WHERE relname LIKE 'telemetry_ret%'")


def test_a_writer_whose_partition_another_process_dropped_makes_it_again(
    url: str, store: PostgresTelemetryStore
) -> None:
    other = PostgresTelemetryStore(url, clock=lambda: NOW)
    try:
        other.write([event("SN2", seq=1, ts=NOW_MS)])
        assert other.delete_before((TODAY + 1) * DAY_MS) == 1  # drops today, which store knows
        assert store.write([event(seq=1, ts=NOW_MS)]) == [True]
        assert [e.seq for e in other.latest("SN1")] == [1]
    finally:
        other.close()


def test_concurrent_writers_and_retention_lose_nothing_they_keep(
    url: str, store: PostgresTelemetryStore
) -> None:
    writers = [PostgresTelemetryStore(url, clock=lambda: NOW) for _ in range(2)]
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for day in range(20):
                batch = [
                    event(f"SN{n}", seq=day * 10 + k, ts=(TODAY - day) * DAY_MS + k)
                    for k in range(10)
                ]
                writers[n].write(batch if n == 0 else batch[::-1])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    cut = (TODAY - 10) * DAY_MS
    dropped = store.delete_before(cut)
    for t in threads:
        t.join()
    for w in writers:
        w.close()
    assert not errors
    dropped += store.delete_before(cut)
    assert store.count() == 400 - dropped
    assert {e.ts >= cut for e in store.by_device("SN0", 0, 2**62)} == {True}
    assert sql(url, "SELECT count(*) FROM event_keys") == [(400 - dropped,)]


# Migrations and errors ----------------------------------------------------------------------


def test_an_unmigrated_database_asks_for_tether_migrate(postgres: PostgresInstance) -> None:
    with fresh_database(postgres) as empty:
        with pytest.raises(MigrationRequiredError, match="run `tether migrate`") as info:
            open_telemetry_store(empty)
        assert info.value.found is None and info.value.needed == migrations.head(
            migrations.TELEMETRY
        )
        first = migrations.upgrade(migrations.TELEMETRY, empty)
        assert (first.before, first.after, first.applied) == (None, "0001", ["0001"])
        again = migrations.upgrade(migrations.TELEMETRY, empty)
        assert (again.before, again.after, again.applied) == ("0001", "0001", [])
        with open_telemetry_store(empty) as opened:
            assert opened.write([event()]) == [True]


def test_concurrent_migrations_run_each_revision_once(postgres: PostgresInstance) -> None:
    ctx = multiprocessing.get_context("spawn")
    with fresh_database(postgres) as empty:
        start, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=workers.migrate, args=(empty, start, out)) for _ in range(2)]
        for p in procs:
            p.start()
        applied = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        assert sorted(applied) == [[], ["0001"]]
        assert migrations.current(migrations.TELEMETRY, empty) == "0001"


def test_a_database_from_a_newer_tether_is_refused(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE tether_telemetry_version SET version_num = '9999'")
    with pytest.raises(EngineError, match=r"newer tether.*upgrade tether"):
        open_telemetry_store(url)
    with pytest.raises(EngineError, match="upgrade tether"):
        migrations.upgrade(migrations.TELEMETRY, url)


def test_no_server_is_a_clear_error_without_the_password() -> None:
    url = f"postgresql://tether:s3cret@127.0.0.1:{free_port()}/telemetry"
    with pytest.raises(EngineError, match="cannot reach the telemetry store") as info:
        open_telemetry_store(url)
    assert "PostgreSQL is running" in str(info.value)
    assert "s3cret" not in str(info.value) and "tether:***@" in str(info.value)
    with pytest.raises(EngineError, match="cannot reach the telemetry store"):
        migrations.upgrade(migrations.TELEMETRY, url)


def test_a_missing_database_says_how_to_make_it(postgres: PostgresInstance) -> None:
    with pytest.raises(EngineError, match="create the database"):
        open_telemetry_store(postgres.database_url("no_such_database"))


@pytest.mark.engine("postgres")
def test_a_restarted_server_is_reconnected_and_a_down_one_is_a_clear_error() -> None:
    with PostgresInstance() as pg:
        url = pg.create_database("restart")
        migrations.upgrade(migrations.TELEMETRY, url)
        with open_telemetry_store(url) as opened:
            assert opened.write([event(seq=1)]) == [True]
            pg.kill()
            with pytest.raises(EngineError, match="telemetry store"):
                opened.write([event(seq=2)])
            pg.restart()
            # The pool's connections died with the server; the next calls get new ones.
            assert opened.write([event(seq=2), event(seq=1)]) == [True, False]
            assert opened.seqs("SN1") == [1, 2]
