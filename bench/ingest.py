"""Ingestion throughput and latency through the gate, as ratios to raw P-256 verification.

    .venv/bin/python bench/ingest.py [--records 30000] [--devices 100] [--batch 500]
        [--https-records 20000] [--request 100] [--clients 2] [--synchronous full|normal]
        [--no-brushes] [--dir DIR] [--profile N]

Provisions ``--devices`` retail carts (and as many toothbrushes, each bonded to
its own account), signs every record and collects the setup's garbage before any
timing starts, then measures:

- in-process: ``platform.gate.process`` in batches of ``--batch`` on one thread
  (so one core): carts' signed JSON ``health`` records (door ``direct``) and
  brushes' signed 20-byte session frames (door ``gateway``, bond checked);
- over HTTPS: the platform's app under uvicorn with TLS, as ``tether serve`` runs
  its HTTPS listener (a server certificate from the platform's service CA), on a
  free loopback port, driven by ``--clients`` keep-alive connections from another
  process that trusts the service CA, each request carrying ``--request`` brush
  frames of one device with its owner's account token (gateway mode);
- the reference: raw P-256 verifications (``public_key.verify`` of the very same
  payloads and signatures, DER prepared in advance) on the same core, interleaved
  with the measured work batch by batch (round by round over HTTPS), so drifting
  load on a shared machine hits both alike.

Each path starts after a full collection of the cycle collector, so the order of
the paths does not decide which one pays for a full collection (one comes about
every fifty thousand records); the collector's share of each path's CPU time is
printed under the table.

Latency is per batch in-process (one ``Gate.process`` call of ``--batch`` records)
and per request over HTTPS (``--request`` records, sent to response received),
not per record. The ``per CPU-s`` column divides CPU times (the server process's
over HTTPS), which other load on the machine does not inflate; ``median round`` is the
median of the rounds' wall-clock ratios. Every append is fsynced unless
``--synchronous normal``. Every record is new and within its device's record
budget, so every one must be accepted: the bench exits with the codes of any
that were not. It takes about a minute; ``--profile N`` prints the top ``N``
functions of a cProfile of the in-process gate.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import http.client
import json
import multiprocessing
import os
import pstats
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from rich.console import Console
from rich.table import Table

from tether.contract.codes import ACCEPTED
from tether.devices.secure_element import SecureElement
from tether.gate.submission import DIRECT, GATEWAY, Submission
from tether.platform import Platform
from tether.service.app import create_app
from tether.service.tls import https_config
from tether.settings import load_settings

console = Console(width=None if sys.stdout.isatty() else 150)
TENANT = "bench"
_ECDSA = ec.ECDSA(hashes.SHA256())
Check = tuple[ec.EllipticCurvePublicKey, bytes, bytes]  # key, DER signature, payload
MakeRecord = Callable[[SecureElement, int, int], tuple[bytes, bytes]]  # -> payload, signature


@dataclass
class Fleet:
    carts: list[SecureElement]
    brushes: list[SecureElement]
    tokens: dict[str, str]  # brush serial -> its owner's account token
    keys: dict[str, ec.EllipticCurvePublicKey] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)

    def next_seq(self, serial: str) -> int:
        self.seq[serial] = self.seq.get(serial, 0) + 1
        return self.seq[serial]


@dataclass
class Timing:
    """Wall and CPU seconds of one kind of work, per round, and the latency of each call.

    ``gc`` is the part of ``cpu`` the cycle collector took (see :class:`Collector`).
    """

    wall: float = 0.0
    cpu: float = 0.0
    gc: float = 0.0
    rounds: list[float] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)

    def run(self, work: Callable[[], Any]) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        COLLECTOR.current = self
        try:
            result = work()
        finally:
            COLLECTOR.current = None
        elapsed = time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.wall += elapsed
        self.rounds.append(elapsed)
        self.calls.append(elapsed)
        return result


class Collector:
    """Counts the CPU time of the cycle collector's runs inside a timing (a gc callback)."""

    def __init__(self) -> None:
        self.current: Timing | None = None
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.process_time()
        elif self.current is not None:
            self.current.gc += time.process_time() - self._start


COLLECTOR = Collector()


@dataclass
class Result:
    label: str
    records: int
    accepted: int
    work: Timing
    raw: Timing
    latency_of: str
    refused: Counter[str] = field(default_factory=Counter)  # code -> records not accepted


# the fleet and its records
def provision(platform: Platform, devices: int, brushes: bool) -> Fleet:
    p = platform
    p.authority.init_tenant(TENANT)
    made = p.provisioner.provision(p.secure_elements, TENANT, "retail-cart", "A", devices)
    carts = [p.secure_elements.open(d.serial) for d in made]
    fleet = Fleet(carts, [], {})
    if brushes:
        made = p.provisioner.provision(p.secure_elements, TENANT, "oral-care-brush", "A", devices)
        now = p.clock()
        for d in made:
            account = p.accounts.create_account(TENANT, now)
            p.accounts.bond(d.serial, account.id, now, "bench", "factory pairing")
            fleet.tokens[d.serial] = p.accounts.issue_token(account.id, now)
            fleet.brushes.append(p.secure_elements.open(d.serial))
    for element in fleet.carts + fleet.brushes:
        fleet.keys[element.serial] = element.public_key()
    return fleet


def der(sig: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))


def health_record(cart: SecureElement, seq: int, ts_ms: int) -> tuple[bytes, bytes]:
    body = {
        "battery_pct": 20 + seq % 80,
        "rssi_dbm": -40 - seq % 50,
        "link": "wifi",
        "uptime_s": 60 * seq,
        "queue_depth": seq % 7,
        "state": "active",
    }
    payload = json.dumps(
        {"device": cart.serial, "seq": seq, "ts": ts_ms, "type": "health", "v": 1, "body": body},
        separators=(",", ":"),
    ).encode()
    return payload, cart.sign(payload)


def session_frame(brush: SecureElement, seq: int, ts_ms: int) -> tuple[bytes, bytes]:
    """A 20-byte session frame (oral-care-brush 0x11): head present, clock synced."""
    frame = (
        bytes([0x11, 0b110 | (seq % 5 == 0)])
        + seq.to_bytes(4, "little")
        + (ts_ms // 1000).to_bytes(4, "little")
        + (110 + seq % 60).to_bytes(2, "little")
        + bytes([30, 30, 30, 30, seq % 4, 90 - seq % 50])
        + (1 + seq % 3).to_bytes(2, "little")
    )
    return frame, brush.sign(frame)


def sign_all(
    fleet: Fleet, elements: Sequence[SecureElement], count: int, make: MakeRecord, ts_ms: int
) -> list[tuple[str, bytes, Check]]:
    """``count`` records round-robin over ``elements``: (serial, record, raw check)."""
    out = []
    for i in range(count):
        element = elements[i % len(elements)]
        payload, sig = make(element, fleet.next_seq(element.serial), ts_ms - count + i)
        out.append((element.serial, payload + sig, (fleet.keys[element.serial], der(sig), payload)))
    return out


# the reference
def verify_raw(checks: Sequence[Check]) -> int:
    for key, signature, payload in checks:
        key.verify(signature, payload, _ECDSA)
    return len(checks)


# in-process
def in_process(
    platform: Platform,
    label: str,
    records: list[tuple[str, bytes, Check]],
    door: str,
    tokens: dict[str, str],
    batch: int,
    profile: cProfile.Profile | None,
) -> Result:
    owner = {}
    for serial, token in tokens.items():
        owner[serial] = platform.accounts.authenticate(token).id
    for serial in {s for s, _, _ in records}:  # the first contact: registry and certificate
        platform.devices.lookup(serial, int(platform.clock() * 1000))
        platform.accounts.owner(serial)
    work, raw = Timing(), Timing()
    accepted = 0
    refused: Counter[str] = Counter()
    gate = platform.gate
    gc.collect()  # each path starts with the collector in the same state
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        arrival = int(platform.clock() * 1000)
        subs = [Submission(s, data, door, arrival, owner.get(s)) for s, data, _ in chunk]
        checks = [c for _, _, c in chunk]
        if profile is not None:
            profile.enable()
        outcomes = work.run(partial(gate.process, subs))
        if profile is not None:
            profile.disable()
        raw.run(partial(verify_raw, checks))
        accepted += sum(o.outcome == ACCEPTED for o in outcomes)
        refused.update(o.code or o.outcome for o in outcomes if o.outcome != ACCEPTED)
    return Result(label, len(records), accepted, work, raw, f"per batch of {batch}", refused)


# over HTTPS
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def requests_of(
    records: list[tuple[str, bytes, Check]], tokens: dict[str, str], size: int
) -> list[tuple[str, bytes, list[Check]]]:
    """Requests of ``size`` records of one device each: (token, body, raw checks)."""
    by_device: dict[str, list[tuple[bytes, Check]]] = {}
    for serial, data, check in records:
        by_device.setdefault(serial, []).append((data, check))
    per_device = []
    for serial, items in by_device.items():
        mine = []
        for start in range(0, len(items), size):
            part = items[start : start + size]
            body = json.dumps(
                {
                    "records": [
                        {"device": serial, "data": base64.b64encode(d).decode()} for d, _ in part
                    ]
                }
            ).encode()
            mine.append((tokens[serial], body, [c for _, c in part]))
        per_device.append(mine)
    # devices take turns, as many phones uploading at once would
    turns = max(len(m) for m in per_device)
    return [m[k] for k in range(turns) for m in per_device if k < len(m)]


@dataclass
class Round:
    """One round of requests for the client process, and what came back."""

    queue: list[tuple[str, bytes]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def drive(conn: http.client.HTTPSConnection, job: Round) -> None:
    """Send requests from the round's queue over one keep-alive connection until it is empty."""
    while True:
        with job.lock:
            if not job.queue:
                return
            token, body = job.queue.pop()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        start = time.perf_counter()
        conn.request("POST", "/v1/records", body, headers)
        response = conn.getresponse()
        answer = response.read()
        elapsed = time.perf_counter() - start
        with job.lock:
            job.latencies.append(elapsed)
            if response.status != 200:
                job.failures.append(f"{response.status}: {answer[:200]!r}")
                continue
            results = json.loads(answer)["results"]
            job.accepted += sum(r["outcome"] == ACCEPTED for r in results)
            job.refused.update(
                r["code"] or r["outcome"] for r in results if r["outcome"] != ACCEPTED
            )


def client_main(port: int, clients: int, service_ca: str, pipe: Connection) -> None:
    """The client process: per round, send its requests over ``clients`` TLS connections.

    It trusts the platform's service CA, as a gateway app does, and keeps each
    connection alive across requests and rounds (one handshake per connection).
    """
    context = ssl.create_default_context(cadata=service_ca)
    conns = [
        http.client.HTTPSConnection("127.0.0.1", port, timeout=120, context=context)
        for _ in range(clients)
    ]
    while (requests := pipe.recv()) is not None:
        job = Round(list(reversed(requests)))
        threads = [threading.Thread(target=drive, args=(c, job)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pipe.send((job.latencies, job.accepted, job.refused, job.failures))
    for conn in conns:
        conn.close()


def over_https(
    platform: Platform,
    records: list[tuple[str, bytes, Check]],
    tokens: dict[str, str],
    size: int,
    clients: int,
    rounds: int = 5,
) -> Result:
    """The platform's app under uvicorn with TLS, as ``tether serve`` runs its HTTPS door."""
    port = free_port()
    config = https_config(
        create_app(platform),
        platform.authority,
        platform.settings.data_dir / "https",
        "127.0.0.1",
        port,
        ["127.0.0.1", "localhost"],
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    requests = requests_of(records, tokens, size)
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    client = multiprocessing.get_context("spawn").Process(
        target=client_main, args=(port, clients, platform.authority.service_ca().cert_pem, theirs)
    )
    client.start()
    work, raw = Timing(), Timing()
    warm, rest = requests[:clients], requests[clients:]
    accepted = 0
    refused: Counter[str] = Counter()
    try:
        ours.send([(t, b) for t, b, _ in warm])  # handshakes, first contact, token look-ups
        ours.recv()
        gc.collect()  # each path starts with the collector in the same state
        step = -(-len(rest) // rounds)
        for start in range(0, len(rest), step):
            part = rest[start : start + step]
            cpu, wall = time.process_time(), time.perf_counter()
            COLLECTOR.current = work
            ours.send([(t, b) for t, b, _ in part])
            latencies, ok, codes, failures = ours.recv()
            COLLECTOR.current = None
            work.rounds.append(time.perf_counter() - wall)
            work.wall += work.rounds[-1]
            work.cpu += time.process_time() - cpu  # this process runs only the server now
            work.calls += latencies
            if failures:
                raise SystemExit(f"the server refused requests: {failures[:3]}")
            accepted += ok
            refused.update(codes)
            raw.run(partial(verify_raw, [c for _, _, cs in part for c in cs]))
    finally:
        ours.send(None)
        client.join()
        server.should_exit = True
        thread.join()
    measured = sum(len(cs) for _, _, cs in rest)
    label = f"per request of {size}, {clients} connections"
    return Result("HTTPS, brush frames (gateway)", measured, accepted, work, raw, label, refused)


# report
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(results: list[Result], title: str) -> None:
    table = Table(
        "path",
        "records",
        "accepted/s",
        "raw verify/s",
        "ratio",
        "median round",
        "per CPU-s",
        "latency p50 / p99",
        title=title,
    )
    for r in results:
        rate, raw_rate = r.records / r.work.wall, r.records / r.raw.wall
        cpu_ratio = r.raw.cpu / r.work.cpu if r.work.cpu else float("nan")
        paired = zip(r.raw.rounds, r.work.rounds, strict=True)
        median = statistics.median(raw_s / work_s for raw_s, work_s in paired)
        table.add_row(
            r.label,
            f"{r.accepted:,}" + ("" if r.accepted == r.records else f" of {r.records:,}"),
            f"{rate:,.0f}",
            f"{raw_rate:,.0f}",
            f"{rate / raw_rate:.2f}",
            f"{median:.2f}",
            f"{cpu_ratio:.2f}",
            f"{percentile(r.work.calls, 0.5) * 1000:.1f} / "
            f"{percentile(r.work.calls, 0.99) * 1000:.1f} ms {r.latency_of}",
        )
    console.print(table)
    console.print(
        "ratio: accepted events per second / raw P-256 verifications per second of the same "
        "payloads, interleaved on the same core, round by round (a batch in-process, a fifth "
        "of the requests over HTTPS). Median round: the median of those rounds' ratios, which "
        "shrugs off other load on a shared machine. Per CPU-s: the ratio of CPU times (over "
        "HTTPS the server process's, TLS included, the client's excluded)."
    )
    console.print(
        "cycle collector inside the measured work (each path starts after a full collection): "
        + "; ".join(
            f"{r.label}: {r.work.gc * 1000:.0f} ms, {r.work.gc / r.records * 1e6:.2f} µs a record"
            for r in results
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=30_000, help="in-process, per class")
    parser.add_argument("--devices", type=int, default=100, help="devices per class")
    parser.add_argument("--batch", type=int, default=500, help="records per Gate.process")
    parser.add_argument("--https-records", type=int, default=20_000, help="0 skips HTTPS")
    parser.add_argument("--request", type=int, default=100, help="records per HTTPS request")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTPS connections")
    parser.add_argument("--no-brushes", action="store_true", help="carts only, no HTTPS")
    parser.add_argument("--dir", type=Path, default=None, help="data directory (default: temp)")
    parser.add_argument(
        "--synchronous",
        choices=["full", "normal"],
        default="full",
        help="the streams' SQLite durability: full fsyncs every append (the default)",
    )
    parser.add_argument("--profile", type=int, default=0, help="print the top N of cProfile")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        overrides = {
            "data_dir": tmp,
            "stream_url": f"sqlite:///{tmp}/stream.sqlite?synchronous={args.synchronous}",
        }
        settings = load_settings(overrides, config_file=Path(tmp) / "none.toml", environ={})
        platform = Platform.open(settings)
        with console.status("provisioning"):
            fleet = provision(platform, args.devices, not args.no_brushes)
        now_ms = int(time.time() * 1000)
        with console.status("signing"):
            carts = sign_all(fleet, fleet.carts, args.records, health_record, now_ms)
            brushes = uploads = []
            if fleet.brushes:
                brushes = sign_all(fleet, fleet.brushes, args.records, session_frame, now_ms)
                uploads = sign_all(fleet, fleet.brushes, args.https_records, session_frame, now_ms)
        gc.collect()  # the setup's garbage, before any timing
        gc.callbacks.append(COLLECTOR)
        profile = cProfile.Profile() if args.profile else None
        results = []
        with console.status("in-process"):
            results.append(
                in_process(
                    platform,
                    "in-process, cart JSON (direct)",
                    carts,
                    DIRECT,
                    {},
                    args.batch,
                    profile,
                )
            )
            if brushes:
                results.append(
                    in_process(
                        platform,
                        "in-process, brush frames (gateway)",
                        brushes,
                        GATEWAY,
                        fleet.tokens,
                        args.batch,
                        profile,
                    )
                )
        if uploads:
            with console.status("over HTTPS"):
                results.append(
                    over_https(platform, uploads, fleet.tokens, args.request, args.clients)
                )
        platform.close()
    report(
        results,
        f"ingestion through the gate: {args.devices} devices per class, streams "
        f"synchronous={args.synchronous}, {os.cpu_count()} cores visible",
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    refused = {r.label: dict(r.refused) for r in results if r.refused}
    if refused:  # every record is new and within its device's budget: all must land
        raise SystemExit(f"records not accepted, by code: {refused}")


if __name__ == "__main__":
    main()
