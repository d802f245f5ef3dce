"""Telemetry store at millions of rows: insert rate and query latency, SQLite or PostgreSQL.

    .venv/bin/python bench/telemetry_store.py [--events 2000000] [--devices 20000]
        [--site-size 20] [--batch 1000] [--queries 2000] [--dir DIR] [--synchronous full]
        [--postgres | --url postgresql://user@host/empty_database]

``--postgres`` runs the PostgreSQL engine on a throwaway cluster started from the
machine's binaries (``fsync`` on, as in production); ``--url`` on an empty
database of yours, which the benchmark migrates and fills. The references are
then a binary ``COPY`` of the same rows into an unindexed table of the same
database, and ``SELECT 1`` on a connection to it.

Fills a fresh store with ``--events`` events from ``--devices`` devices reporting
every five minutes, interleaved in time order as a live fleet sends them (so
every batch lands on many devices' clusters). Then prints:

- insert throughput (``TelemetryStore.write``, batches of ``--batch``), as a ratio
  to raw ``sqlite3`` ``executemany`` of the same rows into an unindexed table,
  interleaved batch by batch in the same run with the same pragmas;
- p50/p99 latency of ``latest(serial, 50)``, of ``range(tenant, 1 h, site=...)``
  and of ``range(tenant, 1 h, device_class=...)`` (first 1,000), each as a ratio to
  a plain ``SELECT 1`` round-trip on a connection to the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tether.store import migrations
from tether.store.telemetry import TelemetryEvent, TelemetryStore, open_telemetry_store
from tether.testing import PostgresInstance

console = Console()
CLASSES = ("retail-cart", "power-tool", "oral-care-brush")
TENANTS = 4
PERIOD_MS = 300_000  # each device reports every five minutes
T0 = 1_780_000_000_000
HOUR_MS = 3_600_000


def site_of(device: int, site_size: int) -> int:
    return device // site_size


def tenant_of(site: int) -> str:
    return f"tenant-{site % TENANTS}"


def device_event(device: int, k: int, site_size: int) -> TelemetryEvent:
    site = site_of(device, site_size)
    ts = T0 + k * PERIOD_MS + (device * 977) % PERIOD_MS
    return TelemetryEvent(
        tenant=tenant_of(site),
        serial=f"SN{device:08d}",
        device_class=CLASSES[device % len(CLASSES)],
        site=f"site-{site:05d}",
        dedupe_key=str(k),
        seq=k,
        type="health",
        v=1,
        device_ts=ts - 1_500,
        ts=ts,
        arrival=ts + 2_000,
        clock_corrected=k % 50 == 0,
        fw="2.3.1",
        body={"battery": 100 - k % 100, "rssi": -40 - device % 50, "temp_c": 21.5, "faults": []},
    )


def batches(events: int, devices: int, site_size: int, size: int) -> Iterator[list[TelemetryEvent]]:
    """The fleet's events in time order, ``size`` at a time; devices in a random order."""
    order = list(range(devices))
    random.Random(1).shuffle(order)
    batch: list[TelemetryEvent] = []
    for n in range(events):
        k, i = divmod(n, devices)
        batch.append(device_event(order[i], k, site_size))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def raw_rows(batch: list[TelemetryEvent]) -> list[tuple[object, ...]]:
    return [
        (e.tenant, e.serial, e.device_class, e.site, e.dedupe_key, e.seq, e.type, e.v,
         e.device_ts, e.ts, e.arrival, int(e.clock_corrected), e.fw, json.dumps(e.body))
        for e in batch
    ]  # fmt: skip


def raw_reference(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute(
        "CREATE TABLE raw (tenant, serial, device_class, site, dedupe_key, seq, type, v, "
        "device_ts, ts, arrival, clock_corrected, fw, body)"
    )
    return conn


class RawReference:
    """The same rows into an unindexed table, as fast as the engine takes them."""

    def __init__(self, url: str, tmp: Path, synchronous: str) -> None:
        self.pg = url.startswith("postgresql")
        if self.pg:
            import psycopg

            self.conn: Any = psycopg.connect(url, autocommit=True)
            self.conn.execute(
                "CREATE TABLE bench_raw (tenant text, serial text, device_class text, site text, "
                "dedupe_key text, seq bigint, type text, v bigint, device_ts bigint, ts bigint, "
                "arrival bigint, clock_corrected bigint, fw text, body text)"
            )
        else:
            self.conn = raw_reference(tmp / "raw.sqlite", synchronous)

    def write(self, rows: list[tuple[object, ...]]) -> None:
        if self.pg:
            with (
                self.conn.transaction(),
                self.conn.cursor().copy("COPY bench_raw FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(["text"] * 5 + ["int8", "text"] + ["int8"] * 5 + ["text"] * 2)
                for row in rows:
                    copy.write_row(row)
        else:
            self.conn.execute("BEGIN")
            self.conn.executemany(f"INSERT INTO raw VALUES ({', '.join('?' * 14)})", rows)
            self.conn.execute("COMMIT")

    def select_1(self, count: int) -> list[float]:
        return latencies(lambda i: self.conn.execute("SELECT 1").fetchone(), count)

    def close(self) -> None:
        if self.pg:
            self.conn.execute("DROP TABLE bench_raw")
        self.conn.close()


def latencies(run: Callable[[int], object], count: int) -> list[float]:
    out = []
    for i in range(count):
        start = time.perf_counter()
        run(i)
        out.append(time.perf_counter() - start)
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--site-size", type=int, default=20, help="devices per site")
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=2_000, help="queries per kind")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument("--postgres", action="store_true", help="PostgreSQL on a throwaway cluster")
    engine.add_argument("--url", default=None, help="PostgreSQL: an empty database to fill")
    args = parser.parse_args()

    if args.postgres:
        with PostgresInstance(settings={"fsync": "on", "full_page_writes": "on"}) as pg:
            run(args, pg.create_database("bench"))
    else:
        run(args, args.url)


def run(args: argparse.Namespace, pg_url: str | None) -> None:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = Path(tmp) / "telemetry.sqlite"
        if pg_url is not None:
            migrations.upgrade(migrations.TELEMETRY, pg_url)
        url = pg_url or f"sqlite:///{db}?synchronous={args.synchronous}"
        store: TelemetryStore = open_telemetry_store(url)
        ref = RawReference(url, Path(tmp), args.synchronous)
        store_s = ref_s = 0.0
        tail_s, tail_n, tail_from = 0.0, 0, args.events * 9 // 10
        written = 0
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}"))
        with Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task("filling the store", total=args.events)
            for batch in batches(args.events, args.devices, args.site_size, args.batch):
                start = time.perf_counter()
                assert all(store.write(batch))
                took = time.perf_counter() - start
                store_s += took
                if written >= tail_from:
                    tail_s, tail_n = tail_s + took, tail_n + len(batch)
                rows = raw_rows(batch)
                start = time.perf_counter()
                ref.write(rows)
                ref_s += time.perf_counter() - start
                written += len(batch)
                bar.advance(task, len(batch))
        store_rate, ref_rate = written / store_s, written / ref_s
        assert store.count() == written

        rng = random.Random(7)
        devices = min(args.devices, written)
        span_ms = (written // args.devices) * PERIOD_MS
        sites = max(1, devices // args.site_size)
        windows = [T0 + rng.randrange(max(1, span_ms - HOUR_MS)) for _ in range(args.queries)]
        serials = [f"SN{rng.randrange(devices):08d}" for _ in range(args.queries)]
        site_ids = [rng.randrange(sites) for _ in range(args.queries)]
        select_1 = ref.select_1(args.queries * 5)
        ref.close()
        sizes: dict[str, list[int]] = {"latest": [], "site": [], "class": []}

        def latest(i: int) -> None:
            sizes["latest"].append(len(store.latest(serials[i], 50)))

        def by_site(i: int) -> None:
            site = site_ids[i]
            found = store.range(
                tenant_of(site), windows[i], windows[i] + HOUR_MS, site=f"site-{site:05d}"
            )
            sizes["site"].append(len(found))

        def by_class(i: int) -> None:
            found = store.range(
                tenant_of(i), windows[i], windows[i] + HOUR_MS, device_class=CLASSES[i % 3]
            )
            sizes["class"].append(len(found))

        results = {
            "latest(serial, 50)": (latencies(latest, args.queries), "latest"),
            "range(site, 1 h)": (latencies(by_site, args.queries), "site"),
            "range(class, 1 h), first 1,000": (latencies(by_class, args.queries), "class"),
        }
        if pg_url is not None:
            import psycopg

            with psycopg.connect(pg_url) as conn:
                size = conn.execute(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "WHERE c.relname LIKE 'telemetry%' AND c.relkind = 'r' "
                    "OR c.relname = 'event_keys'"
                ).fetchone()
            size_mb = float(size[0] if size else 0) / 1e6
        else:
            size_mb = sum(f.stat().st_size for f in Path(tmp).glob("telemetry.sqlite*")) / 1e6
        store.close()

    ref_p50 = p(select_1, 0.5)
    name = "PostgreSQL" if pg_url else "SQLite"
    raw = "binary COPY" if pg_url else "executemany"
    table = Table(title=f"telemetry store, {name}: {written:,} events, {devices:,} devices")
    for col in ("measure", "p50", "p99", "rows", "p50 / SELECT 1"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    for name, (times, kind) in results.items():
        mean_rows = statistics.mean(sizes[kind])
        table.add_row(
            name,
            f"{p(times, 0.5) * 1e3:.3f} ms",
            f"{p(times, 0.99) * 1e3:.3f} ms",
            f"{mean_rows:.0f}",
            f"{p(times, 0.5) / ref_p50:.0f}",
        )
    table.add_row("SELECT 1 (reference)", f"{ref_p50 * 1e3:.4f} ms", "", "", "1")
    console.print(table)
    console.print(
        f"insert: {store_rate:,.0f} events/s overall, {tail_n / tail_s:,.0f}/s over the last "
        f"10% (raw unindexed {raw}: {ref_rate:,.0f} rows/s; ratio "
        f"{store_rate / ref_rate:.2f}, last 10% {tail_n / tail_s / ref_rate:.2f}); "
        f"{'' if pg_url else f'synchronous={args.synchronous}, '}batches of {args.batch:,}; "
        f"store size {size_mb:,.0f} MB"
    )


if __name__ == "__main__":
    main()
