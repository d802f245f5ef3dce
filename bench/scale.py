"""Scale on the production engines: gate workers on PostgreSQL + JetStream, and a big table.

    .venv/bin/python bench/scale.py [--records 100000] [--fleet 1000] [--workers 1,2]
        [--rounds 1] [--events 10000000] [--devices 100000] [--period-minutes 60]
        [--fill-batch 5000] [--writers 2] [--queries 5000] [--explained 500] [--explain]
        [--only gate|store] [--postgres-url postgresql://user@host/empty_db]
        [--nats-url nats://host:4222] [--shared-buffers 1GB] [--dir DIR]

Two measures in one run:

1. **Gate workers.** Provisions ``--fleet`` retail carts and signs ``--records``
   health records, interleaved as a fleet sends them, before any timing. For
   each set of engines and each worker count (``--rounds`` times, the median
   reported), it appends those very records to a fresh raw stream (as the MQTT
   bridge does), starts ``tether worker --gate`` processes on one settings file,
   and times from the moment all of them run until the event log holds every
   record: an event is accepted once it is in the event log. The projector does
   not run (the second measure is the telemetry store's side). The engines:
   PostgreSQL (entity store) + JetStream (streams and the work group), and the
   embedded engine (SQLite entity store and streams, ``synchronous=full``; its
   work group also spans processes), whose entity store is a copy of the
   PostgreSQL one, so the same signed records verify on both. Beside the rates:
   the CPU each process took over the timed window, read from ``/proc`` (Linux).

2. **The telemetry store on PostgreSQL.** Fills it with ``--events`` events from
   ``--devices`` devices through ``TelemetryStore.write`` (the engine's batched
   binary ``COPY`` into a temporary table, then one statement that claims the
   keys and stores the rows), ``--writers`` threads at a time, every device
   reporting every ``--period-minutes`` up to now, in time order as a live fleet
   sends. The reference is a binary ``COPY`` of the same rows into an unindexed
   table, on every 50th batch. Then it times ``latest(serial, 100)`` through the
   port for ``--queries`` random devices twice: right after the fill (autovacuum
   and the checkpointer still at work) and settled (after ``VACUUM (ANALYZE)``
   and ``CHECKPOINT``), each with a ``SELECT 1`` round trip after every query as
   the reference, and the server's planning and execution time of the same
   query (``EXPLAIN ANALYZE``) for ``--explained`` other random devices.

Engines come from ``--postgres-url`` (an empty database: both stores' tables go
in it, migrated here) and ``--nats-url`` (the bench's streams get prefixes of
their own, deleted afterwards), or are started here from the machine's binaries
with the testing harness: PostgreSQL with ``fsync`` on, ``--shared-buffers`` and
``max_wal_size=4GB``, and ``nats-server`` with JetStream. Every process shares
the machine's cores: the table reports the CPU each took.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import psycopg
import sqlalchemy as sa
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tether.gate.submission import MQTT, Submission
from tether.platform import Platform
from tether.registry.sql import make_engine
from tether.settings import load_settings
from tether.store import migrations
from tether.store.telemetry import TelemetryEvent, TelemetryStore, open_telemetry_store
from tether.stream.base import open_stream
from tether.stream.natslink import parse_url
from tether.testing import NatsInstance, PostgresInstance
from tether.testing.workers import start_worker, stop_processes

console = Console(width=None if sys.stdout.isatty() else 150)
TENANT = "bench"
HEALTH = {"battery_pct": 70, "rssi_dbm": -61, "link": "wifi"}
READY = "(Ctrl-C stops)"  # what a worker prints once its loops run
TICKS = os.sysconf("SC_CLK_TCK")
POLL_S = 0.05
STALL_S = 120.0  # no new event for this long: the run has failed
LATEST = 100
PRODUCTION = "PostgreSQL + JetStream"
EMBEDDED = "embedded (SQLite)"
CLASSES = ("retail-cart", "power-tool", "oral-care-brush")
SITE_SIZE = 20
TENANTS = 4
RAW_EVERY = 50  # the unindexed COPY reference runs on every 50th batch of the fill
# The query TelemetryStore.latest runs on PostgreSQL, for EXPLAIN.
LATEST_SQL = (
    "SELECT tenant, serial, device_class, site, dedupe_key, seq, type, v, device_ts, ts, "
    "arrival, clock_corrected, fw, body FROM telemetry WHERE serial = %s "
    "ORDER BY ts DESC, seq DESC NULLS LAST, dedupe_key DESC LIMIT %s"
)


def note(text: str) -> None:
    """A line for the record when the output is not a terminal (progress bars do not show)."""
    if not console.is_terminal:
        console.print(f"{time.strftime('%H:%M:%S')} {text}", highlight=False)


def progress(*, rate: bool = False) -> Progress:
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if rate:
        columns += [TaskProgressColumn(), TimeElapsedColumn()]
    return Progress(
        *columns,
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # note() writes the milestones instead
    )


# CPU accounting from /proc (Linux)
def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_of(pid: int) -> list[int]:
    """``pid`` and its direct children (a postmaster and its backends)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot, all cores (idle and I/O wait aside)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / TICKS


@dataclass
class Engines:
    """Where the bench runs: one PostgreSQL database, one NATS server, and their processes."""

    postgres_url: str
    nats_url: str
    postgres_pid: int | None = None  # the postmaster, when started here
    nats_pid: int | None = None

    def cpu(self) -> dict[str, float]:
        out = {}
        if self.nats_pid is not None:
            out["NATS"] = cpu_of(self.nats_pid)
        if self.postgres_pid is not None:
            out["PostgreSQL"] = sum(cpu_of(p) for p in children_of(self.postgres_pid))
        return out


# 1. gate workers
@dataclass
class Fleet:
    subs: list[Submission]
    per_device: int


def sign_fleet(p: Platform, devices: int, records: int) -> Fleet:
    """``devices`` carts, ``records`` signed health records in all, round-robin over them."""
    if TENANT not in {t.name for t in p.registry.list_tenants()}:
        p.authority.init_tenant(TENANT)
    with console.status(f"provisioning {devices:,} carts"):
        made = p.provisioner.provision(p.secure_elements, TENANT, "retail-cart", "3", devices)
    per_device = -(-records // devices)
    arrival = int(time.time() * 1000)
    elements = [p.secure_elements.open(d.serial) for d in made]
    subs = []
    began = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("signing records", total=records)
        for n in range(records):
            seq, i = divmod(n, devices)
            element = elements[i]
            record = {
                "device": element.serial,
                "seq": seq + 1,
                "ts": arrival - (per_device - seq) * 60_000,
                "type": "health",
                "v": 1,
                "body": HEALTH,
            }
            payload = json.dumps(record, separators=(",", ":")).encode()
            subs.append(Submission(element.serial, payload + element.sign(payload), MQTT, arrival))
            if n % 1000 == 999:
                bar.advance(task, 1000)
    took = time.perf_counter() - began
    note(f"signed {records:,} records of {devices:,} devices in {took:.0f} s")
    return Fleet(subs, per_device)


def copy_entity_store(source_url: str, target_url: str) -> None:
    """Every entity row of one database into another (SQLite made here), table by table."""
    migrations.create_sqlite_entity_schema(target_url)
    source, target = make_engine(source_url), make_engine(target_url)
    try:
        with source.connect() as src, target.begin() as dst:
            for tables in migrations.entity_metadata():
                for table in tables.sorted_tables:
                    rows = [dict(row) for row in src.execute(sa.select(table)).mappings()]
                    if rows:
                        dst.execute(table.insert(), rows)
    finally:
        source.dispose()
        target.dispose()


def settings_file(path: Path, data_dir: Path, entity_url: str, stream_url: str, burst: int) -> Path:
    """One settings file for the workers of a run; no MQTT, so no notices to send."""
    values = {"data_dir": str(data_dir), "entity_url": entity_url, "stream_url": stream_url}
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    lines += ["[mqtt]", "enabled = false", "[ingest]", f"device_burst = {burst}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def with_prefix(nats_url: str, prefix: str) -> str:
    if "?" in nats_url:
        return f"{nats_url}&prefix={prefix}"
    return f"{nats_url.rstrip('/')}/?prefix={prefix}"


def drop_jetstream(stream_url: str) -> None:
    """Delete the streams and key buckets a bench run made under its prefix."""
    target = parse_url(stream_url)
    names = [f"{target.prefix}-{s}" for s in ("raw", "events", "dead-letter")]
    names += [f"KV_{target.prefix}_{b}" for b in ("keys", "consumers")]

    async def drop() -> None:
        client = await nats.connect(list(target.servers), connect_timeout=target.timeout)
        try:
            js = client.jetstream()
            for name in names:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(name)
        finally:
            await client.close()

    asyncio.run(drop())


@dataclass
class GateRun:
    engines: str
    workers: int
    records: int
    startup_s: float  # workers started to all of them running
    at_ready: int  # events already in the log then
    window_s: float  # all running to every record in the event log
    cpu: dict[str, float]  # over the window, by process
    busy_s: float  # the machine's busy CPU seconds over the window
    rejected: int

    @property
    def rate(self) -> float:
        return (self.records - self.at_ready) / self.window_s


def gate_run(
    label: str,
    workers: int,
    fleet: Fleet,
    root: Path,
    data_dir: Path,
    entity_url: str,
    stream_url: str,
    engines: Engines,
) -> GateRun:
    """Append the fleet's records to a fresh raw stream, start the workers, time them."""
    root.mkdir(parents=True)
    total = len(fleet.subs)
    burst = max(1000, fleet.per_device)
    config = settings_file(root / "tether.toml", data_dir, entity_url, stream_url, burst)
    raw, events = open_stream(stream_url, "raw"), open_stream(stream_url, "events")
    dead = open_stream(stream_url, "dead-letter")
    procs: list[subprocess.Popen[bytes]] = []
    logs = [root / f"gate-{i}.log" for i in range(workers)]
    try:
        with progress() as bar:
            task = bar.add_task(f"{label}: appending to the raw stream", total=total)
            for start in range(0, total, 1000):
                part = fleet.subs[start : start + 1000]
                raw.append([s.entry() for s in part])
                bar.advance(task, len(part))
        if events.last_offset() != 0:
            raise SystemExit(f"{stream_url}: the event log is not empty")
        description = f"{label}, {workers} gate worker{'s' * (workers > 1)}: events"
        with progress(rate=True) as bar:
            task = bar.add_task(description, total=total)
            started = time.perf_counter()
            procs = [start_worker(config, ["gate"], log) for log in logs]
            ready: float | None = None
            at_ready, count, last_change = 0, 0, started
            cpu_before: dict[str, float] = {}
            busy_before = 0.0
            while count < total:
                time.sleep(POLL_S)
                now = time.perf_counter()
                latest = events.last_offset()
                if latest != count:
                    count, last_change = latest, now
                    bar.update(task, completed=count)
                if ready is None and all(READY in log.read_text() for log in logs):
                    ready, at_ready = now, count
                    cpu_before = worker_cpu(procs, engines)
                    busy_before = machine_busy()
                dead_workers = [p for p in procs if p.poll() is not None]
                if dead_workers or now - last_change > STALL_S:
                    tails = "\n".join(log.read_text()[-3000:] for log in logs)
                    raise SystemExit(
                        f"{label}: {count:,} of {total:,} events, a worker exited or no "
                        f"progress for {STALL_S:.0f} s; worker logs:\n{tails}"
                    )
            finished = time.perf_counter()
            cpu_after = worker_cpu(procs, engines)
            busy_after = machine_busy()
        if ready is None:  # every record judged before the last worker said it runs
            raise SystemExit(f"{label}: use more --records: the run ended during start-up")
        run = GateRun(
            engines=label,
            workers=workers,
            records=total,
            startup_s=ready - started,
            at_ready=at_ready,
            window_s=finished - ready,
            cpu={k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after},
            busy_s=busy_after - busy_before,
            rejected=dead.last_offset(),
        )
        note(f"{description}: {run.rate:,.0f}/s after a start-up of {run.startup_s:.1f} s")
        return run
    finally:
        stop_processes(procs, timeout=30)
        for stream in (raw, events, dead):
            stream.close()


CPU_OF = ("workers", "NATS", "PostgreSQL", "bench")


def worker_cpu(procs: list[subprocess.Popen[bytes]], engines: Engines) -> dict[str, float]:
    return {
        "workers": sum(cpu_of(p.pid) for p in procs),
        **engines.cpu(),
        "bench": time.process_time(),
    }


def gate_bench(args: argparse.Namespace, engines: Engines, root: Path) -> list[GateRun]:
    data_dir = root / "data"
    for target in (migrations.ENTITY, migrations.TELEMETRY):
        migrations.upgrade(target, engines.postgres_url)
    overrides = {
        "data_dir": str(data_dir),
        "entity_url": engines.postgres_url,
        "telemetry_url": engines.postgres_url,
    }
    settings = load_settings(overrides, config_file=root / "none.toml", environ={})
    platform = Platform.open(settings)
    try:
        fleet = sign_fleet(platform, args.fleet, args.records)
    finally:
        platform.close()
    embedded_entity = f"sqlite:///{root / 'embedded-entity.sqlite'}"
    with console.status("copying the entity store for the embedded engine"):
        copy_entity_store(engines.postgres_url, embedded_entity)
    runs = []
    for round_ in range(args.rounds):
        for workers in args.workers:
            where = root / f"r{round_}-w{workers}"
            stream_url = with_prefix(engines.nats_url, f"bench{secrets.token_hex(6)}")
            try:
                runs.append(
                    gate_run(
                        PRODUCTION,
                        workers,
                        fleet,
                        where / "production",
                        data_dir,
                        engines.postgres_url,
                        stream_url,
                        engines,
                    )
                )
            finally:
                drop_jetstream(stream_url)
            runs.append(
                gate_run(
                    EMBEDDED,
                    workers,
                    fleet,
                    where / "embedded",
                    data_dir,
                    embedded_entity,
                    f"sqlite:///{where / 'embedded' / 'stream.sqlite'}",
                    engines,
                )
            )
    return runs


def gate_report(runs: list[GateRun], args: argparse.Namespace) -> None:
    def median(engines: str, workers: int) -> float:
        return statistics.median(
            r.rate for r in runs if r.engines == engines and r.workers == workers
        )

    cores = os.cpu_count() or 1
    table = Table(
        "engines",
        "workers",
        "accepted events/s",
        "vs 1 worker",
        "vs embedded",
        "start-up",
        "worker CPU per event",
        "CPU s: workers / NATS / PostgreSQL / bench",
        "cores busy (other load)",
        title=(
            f"gate workers: {args.records:,} signed records from {args.fleet:,} devices, "
            f"started to all in the event log; {cores} cores visible"
        ),
    )
    groups: dict[tuple[str, int], list[GateRun]] = {}
    for run in runs:
        groups.setdefault((run.engines, run.workers), []).append(run)
    for (engines, workers), group in groups.items():
        ordered = sorted(group, key=lambda r: r.rate)
        r = ordered[(len(ordered) - 1) // 2]  # the median run (the lower one of an even count)
        rate = f"{median(engines, workers):,.0f}"
        if len(ordered) > 1:
            rate += f" ({ordered[0].rate:,.0f} to {ordered[-1].rate:,.0f})"
        if any(run.rejected for run in group):
            rate += f", {max(run.rejected for run in group):,} rejected"
        per_event = r.cpu["workers"] / (r.records - r.at_ready) * 1e6
        split = " / ".join(f"{r.cpu[name]:.1f}" if name in r.cpu else "-" for name in CPU_OF)
        other = max(0.0, r.busy_s - sum(r.cpu.values()))
        table.add_row(
            engines,
            str(workers),
            rate,
            f"{median(engines, workers) / median(engines, min(args.workers)):.2f}",
            f"{median(engines, workers) / median(EMBEDDED, workers):.2f}",
            f"{r.startup_s:.1f} s" + (f" ({r.at_ready:,} done)" if r.at_ready else ""),
            f"{per_event:.0f} µs",
            split,
            f"{r.busy_s / r.window_s:.2f} of {cores} ({other / r.window_s:.2f})",
        )
    console.print(table)
    console.print(
        "accepted events/s: events added to the event log from the moment every worker runs "
        "(start-up: process start, imports, engines opened) until it holds every record, "
        "each worker judging batches it claims from the raw stream's work group; each worker "
        "verifies every device's certificate once (a cold look-up) as it meets it. vs 1 "
        "worker and vs embedded: ratios to the same run's median of that engine with one "
        "worker, and of the embedded engine with as many workers. The projector does not "
        "run. CPU: seconds each process (PostgreSQL: the postmaster and its backends) used "
        "over the same window, when started here; cores busy: the whole machine's, in "
        "brackets the part no process of the bench's took (other load). With --rounds, the "
        "median run's figures and the range of the rates. On "
        f"{cores} cores the gate workers, NATS, PostgreSQL and the bench (polling the event "
        "log) take turns: with as many workers as cores, the workers cannot each have a "
        "core, so the 2-worker figure is a floor for 2 workers with cores of their own."
    )


# 2. the telemetry store
@dataclass
class Fill:
    events: int
    seconds: float
    tail_events: int
    tail_seconds: float
    raw_rows: int = 0
    raw_seconds: float = 0.0
    size_bytes: int = 0
    partitions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def fleet_event(device: int, k: int, rounds: int, end_ms: int, period_ms: int) -> TelemetryEvent:
    """Device ``device``'s ``k``-th report of ``rounds``; the last ones come just before now."""
    site = device // SITE_SIZE
    ts = end_ms - (rounds - k) * period_ms + (device * 7919) % period_ms
    return TelemetryEvent(
        tenant=f"tenant-{site % TENANTS}",
        serial=f"SN{device:08d}",
        device_class=CLASSES[device % len(CLASSES)],
        site=f"site-{site:05d}",
        dedupe_key=str(k + 1),
        seq=k + 1,
        type="health",
        v=1,
        device_ts=ts - 1_500,
        ts=ts,
        arrival=ts + 2_000,
        clock_corrected=False,
        fw="2.3.1",
        body={"battery": 100 - k % 100, "rssi": -40 - device % 50, "temp_c": 21.5, "faults": []},
    )


def raw_row(e: TelemetryEvent) -> tuple[object, ...]:
    return (e.tenant, e.serial, e.device_class, e.site, e.dedupe_key, e.seq, e.type, e.v,
            e.device_ts, e.ts, e.arrival, e.clock_corrected, e.fw,
            json.dumps(e.body, separators=(",", ":")))  # fmt: skip


RAW_TABLE = (
    "CREATE TABLE bench_raw (tenant text, serial text, device_class text, site text, "
    "dedupe_key text, seq bigint, type text, v bigint, device_ts bigint, ts bigint, "
    "arrival bigint, clock_corrected boolean, fw text, body text)"
)
RAW_TYPES = ["text"] * 5 + ["int8", "text"] + ["int8"] * 4 + ["bool", "text", "text"]


def fill_store(store: TelemetryStore, url: str, args: argparse.Namespace) -> Fill:
    """``--events`` events into the store, ``--writers`` threads each writing whole batches."""
    events, devices, size = args.events, args.devices, args.fill_batch
    rounds = -(-events // devices)
    period_ms = args.period_minutes * 60_000
    end_ms = int(time.time() * 1000) - period_ms
    order = list(range(devices))
    random.Random(1).shuffle(order)
    batches = iter(range(-(-events // size)))
    take = threading.Lock()
    fill = Fill(events, 0.0, 0, 0.0)
    written = [0]
    tail_from = events - events // 10
    tail_start: list[float] = []
    failures: list[BaseException] = []

    def batch(b: int) -> list[TelemetryEvent]:
        out = []
        for n in range(b * size, min((b + 1) * size, events)):
            k, i = divmod(n, devices)
            out.append(fleet_event(order[i], k, rounds, end_ms, period_ms))
        return out

    def writer(bar: Progress, task: Any) -> None:
        with psycopg.connect(url, autocommit=True) as raw:
            while not failures:
                with take:
                    b = next(batches, None)
                if b is None:
                    return
                chunk = batch(b)
                if not all(store.write(chunk)):
                    raise SystemExit("the store refused events it never held")
                if b % RAW_EVERY == 0:
                    rows = [raw_row(e) for e in chunk]
                    began = time.perf_counter()
                    with (
                        raw.transaction(),
                        raw.cursor().copy("COPY bench_raw FROM STDIN (FORMAT BINARY)") as copy,
                    ):
                        copy.set_types(RAW_TYPES)
                        for row in rows:
                            copy.write_row(row)
                    took = time.perf_counter() - began
                    with fill.lock:
                        fill.raw_rows += len(rows)
                        fill.raw_seconds += took
                with fill.lock:
                    before, written[0] = written[0], written[0] + len(chunk)
                    if written[0] >= tail_from and not tail_start:
                        tail_start.append(time.perf_counter())
                        fill.tail_events = events - written[0]
                    if written[0] * 20 // events > before * 20 // events:
                        note(f"filled {written[0]:,} of {events:,}")
                bar.advance(task, len(chunk))

    def guarded(bar: Progress, task: Any) -> None:
        try:
            writer(bar, task)
        except BaseException as exc:
            failures.append(exc)

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
    with progress(rate=True) as bar:
        task = bar.add_task("filling the telemetry store", total=events)
        began = time.perf_counter()
        threads = [
            threading.Thread(target=guarded, args=(bar, task), daemon=True)
            for _ in range(args.writers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ended = time.perf_counter()
    if failures:
        raise failures[0]
    fill.seconds = ended - began
    note(f"filled {events:,} events in {fill.seconds:,.0f} s")
    fill.tail_seconds = ended - tail_start[0] if tail_start else 0.0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_raw")
        found = conn.execute(
            "SELECT count(*), sum(pg_total_relation_size(i.inhrelid)) FROM pg_inherits i "
            "WHERE i.inhparent = 'telemetry'::regclass"
        ).fetchone()
        keys = conn.execute("SELECT pg_total_relation_size('event_keys')").fetchone()
    assert found is not None and keys is not None
    fill.partitions = int(found[0])
    fill.size_bytes = int(found[1] or 0) + int(keys[0])
    return fill


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Latency:
    phase: str
    client: list[float]  # latest() through the port
    rows: list[int]
    server: list[float]  # planning + execution, EXPLAIN ANALYZE
    planning: list[float]
    select_1: list[float]  # a round trip after each latest(), on another connection


def time_latest(
    store: TelemetryStore,
    conn: psycopg.Connection[Any],
    phase: str,
    seed: int,
    n: int,
    explained: int,
    devices: int,
) -> Latency:
    """``n`` latest() calls through the port on random devices, then ``explained`` others'
    server times (other devices, so that they do not read the pages just read)."""
    rng = random.Random(seed)
    serials = [f"SN{rng.randrange(devices):08d}" for _ in range(n + explained)]
    store.latest("SN-warm-up", LATEST)  # the pool's connection
    client, rows, select_1 = [], [], []
    with progress() as bar:
        task = bar.add_task(f"latest(serial, {LATEST}), {phase}", total=n)
        for serial in serials[:n]:
            began = time.perf_counter()
            found = store.latest(serial, LATEST)
            client.append(time.perf_counter() - began)
            rows.append(len(found))
            began = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            select_1.append(time.perf_counter() - began)
            bar.advance(task)
    server, planning = [], []
    for serial in serials[n:]:
        answer = conn.execute(
            f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {LATEST_SQL}", (serial, LATEST)
        ).fetchone()
        assert answer is not None
        report = answer[0][0]
        planning.append(report["Planning Time"] / 1000)
        server.append((report["Planning Time"] + report["Execution Time"]) / 1000)
    note(f"latest, {phase}: p99 {quantile(client, 0.99) * 1000:.2f} ms")
    return Latency(phase, client, rows, server, planning, select_1)


def settle(conn: psycopg.Connection[Any]) -> float:
    """Now what autovacuum and the checkpointer reach by themselves a while after a fill."""
    began = time.perf_counter()
    with console.status("VACUUM (ANALYZE) and CHECKPOINT"):
        conn.execute("VACUUM (ANALYZE) telemetry")
        conn.execute("VACUUM (ANALYZE) event_keys")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            note("CHECKPOINT needs a superuser or pg_checkpoint: left to the server")
    took = time.perf_counter() - began
    note(f"settled in {took:.0f} s")
    return took


@dataclass
class StoreResults:
    fill: Fill
    phases: list[Latency]
    settle_s: float
    plan: str


def store_bench(args: argparse.Namespace, engines: Engines) -> StoreResults:
    url = engines.postgres_url
    migrations.upgrade(migrations.TELEMETRY, url)
    store = open_telemetry_store(url)
    try:
        if store.count():
            raise SystemExit(f"the telemetry store at {url} is not empty")
        fill = fill_store(store, url, args)
        with console.status("counting"):
            held = store.count()
        if held != args.events:
            raise SystemExit(f"the store holds {held:,} events, not {args.events:,}")
        with psycopg.connect(url, autocommit=True) as conn:
            sizes = (args.queries, args.explained, args.devices)
            after = time_latest(store, conn, "right after the fill", 7, *sizes)
            settle_s = settle(conn)
            settled = time_latest(store, conn, "settled", 8, *sizes)
            serial = f"SN{random.Random(9).randrange(args.devices):08d}"
            lines = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {LATEST_SQL}", (serial, LATEST))
            plan = "\n".join(line for (line,) in lines.fetchall())
        return StoreResults(fill, [after, settled], settle_s, plan)
    finally:
        store.close()


def store_report(results: StoreResults, args: argparse.Namespace) -> None:
    fill = results.fill
    ms = 1000.0

    def row(name: str, values: list[float], rows: str = "") -> list[str]:
        return [
            name,
            f"{quantile(values, 0.5) * ms:.2f} ms",
            f"{quantile(values, 0.99) * ms:.2f} ms",
            f"{max(values) * ms:.2f} ms",
            rows,
            f"{len(values):,}",
        ]

    title = (
        f"telemetry store, PostgreSQL: {fill.events:,} events from {args.devices:,} devices, "
        f"{fill.partitions} partitions, {fill.size_bytes / 1e9:.1f} GB with indexes and keys"
    )
    table = Table("measure", "p50", "p99", "max", "rows", "queries", title=title)
    for phase in results.phases:
        name = f"latest(serial, {LATEST}), {phase.phase}"
        if phase is results.phases[-1]:
            name += f" (VACUUM ANALYZE, CHECKPOINT: {results.settle_s:.0f} s)"
        table.add_row(*row(name, phase.client, f"{statistics.mean(phase.rows):.0f}"))
        table.add_row(*row("  server: planning + execution", phase.server))
        table.add_row(*row("  server: of which planning", phase.planning))
        table.add_row(*row("  SELECT 1 round trip after each (reference)", phase.select_1))
    console.print(table)
    p99s = [quantile(phase.client, 0.99) * ms for phase in results.phases]
    verdicts = [
        f"{phase.phase} {p99:.2f} ms ({'under' if p99 < 10 else 'OVER'})"
        for phase, p99 in zip(results.phases, p99s, strict=True)
    ]
    raw_rate = fill.raw_rows / fill.raw_seconds if fill.raw_seconds else float("nan")
    rate = fill.events / fill.seconds
    tail = fill.tail_events / fill.tail_seconds if fill.tail_seconds else float("nan")
    console.print(
        f"latest p99 against the 10 ms target: {'; '.join(verdicts)}. Random devices, through "
        "TelemetryStore.latest (a pooled connection, the statement prepared), decoding "
        "included; the tables fit in the machine's memory (shared buffers and the page "
        "cache). Right after the fill, autovacuum and the checkpointer are still at work; "
        "settled: after VACUUM (ANALYZE) and CHECKPOINT, other random devices. Server: "
        "EXPLAIN ANALYZE (TIMING OFF) of the same query for other random devices, on the "
        "connection the SELECT 1s use."
    )
    console.print(
        f"fill: {fill.events:,} events in {fill.seconds:,.0f} s through TelemetryStore.write: "
        f"{rate:,.0f} events/s overall, {tail:,.0f}/s over the last 10%; raw binary COPY into "
        f"an unindexed table (every {RAW_EVERY}th batch): {raw_rate:,.0f} rows/s (ratio "
        f"{rate / raw_rate:.2f}); {args.writers} writer threads, batches of "
        f"{args.fill_batch:,}, one report per device every {args.period_minutes} min up to now"
    )
    if args.explain:
        console.print(f"a plan, settled (EXPLAIN ANALYZE, BUFFERS):\n{results.plan}")


# engines and the command line
@contextlib.contextmanager
def engines_for(args: argparse.Namespace) -> Iterator[Engines]:
    with contextlib.ExitStack() as stack:
        postgres_url, nats_url = args.postgres_url, args.nats_url
        postgres_pid = nats_pid = None
        if postgres_url is None:
            settings = {
                "fsync": "on",
                "full_page_writes": "on",
                "shared_buffers": args.shared_buffers,
                "max_wal_size": "4GB",
            }
            with console.status("starting PostgreSQL"):
                pg = stack.enter_context(PostgresInstance(settings=settings))
            postgres_url = pg.create_database("bench")
            postgres_pid = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
        if nats_url is None and "gate" in args.only:
            with console.status("starting NATS"):
                server = stack.enter_context(NatsInstance())
            nats_url = server.url
            nats_pid = server.proc.pid if server.proc is not None else None
        yield Engines(postgres_url, nats_url or "", postgres_pid, nats_pid)


def parse_workers(text: str) -> list[int]:
    counts = sorted({int(part) for part in text.split(",")})
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("worker counts are positive integers, e.g. 1,2")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gate = parser.add_argument_group("gate workers")
    gate.add_argument("--records", type=int, default=100_000, help="signed records")
    gate.add_argument("--fleet", type=int, default=1_000, help="devices signing them")
    gate.add_argument("--workers", type=parse_workers, default=[1, 2], help="e.g. 1,2")
    gate.add_argument("--rounds", type=int, default=1, help="runs of each, median reported")
    store = parser.add_argument_group("telemetry store")
    store.add_argument("--events", type=int, default=10_000_000)
    store.add_argument("--devices", type=int, default=100_000)
    store.add_argument("--period-minutes", type=int, default=60, help="between a device's events")
    store.add_argument("--fill-batch", type=int, default=5_000, help="events per write")
    store.add_argument("--writers", type=int, default=2, help="threads writing at once")
    store.add_argument("--queries", type=int, default=5_000, help="latest() calls timed")
    store.add_argument("--explained", type=int, default=500, help="of them, EXPLAIN ANALYZEd")
    store.add_argument("--explain", action="store_true", help="print one query plan")
    where = parser.add_argument_group("engines")
    where.add_argument("--postgres-url", default=None, help="an empty database (default: start)")
    where.add_argument("--nats-url", default=None, help="a JetStream server (default: start)")
    where.add_argument("--shared-buffers", default="1GB", help="PostgreSQL started here")
    where.add_argument("--dir", type=Path, default=None, help="for the bench's files")
    parser.add_argument(
        "--only", choices=["gate", "store"], default=None, help="run one of the two measures"
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: the engines started here stop and their files go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.only = [args.only] if args.only else ["gate", "store"]
    if args.events < args.devices:
        parser.error("--events must be at least --devices")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, engines_for(args) as engines:
        runs: list[GateRun] = []
        results: StoreResults | None = None
        if "gate" in args.only:
            runs = gate_bench(args, engines, Path(tmp))
        if "store" in args.only:
            results = store_bench(args, engines)
    if runs:
        gate_report(runs, args)
    if results is not None:
        store_report(results, args)


if __name__ == "__main__":
    main()
