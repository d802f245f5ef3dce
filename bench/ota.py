"""Rollout planning over a million devices, and the rate of device status reports.

    .venv/bin/python bench/ota.py [--devices 1000000] [--hw 4] [--sites 2000] [--seed 1]
        [--reports 100000] [--batch 1000] [--dir DIR]

Two figures:

- planning: a synthetic fleet of ``--devices`` carts as plain tuples
  ``(serial, tenant, class, hw, fw, site)`` (some on other firmware, some on an
  opted-out tenant or site), then the planner as ``tether rollout create`` runs it:
  cohort selection with opt-outs, the stratified order over hardware revisions and
  sites, and the default plan's stage sizes. The reference, in the same run, is
  Python's ``sorted`` of the same tuples by hardware revision and site (the
  grouping a plan needs): the plan is printed as a multiple of it.
- status reports: the tracker's path on an SQLite entity store, batch by batch:
  accepted ``ota-status`` records (downloading, verifying, installed) and
  ``boot`` records of the new version, folded into the per-device update states
  of one rollout of ``--reports / 4`` devices. The reference is the in-memory
  state machine (``step``) over the same reports: the store's rate is printed as
  a fraction of it.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tether.gate.submission import AcceptedEvent
from tether.rollouts.model import QUEUED, CohortSpec, step
from tether.rollouts.plan import (
    Candidate,
    OptOuts,
    parse_plan,
    select,
    stage_sizes,
    stratified_order,
)
from tether.rollouts.store import RolloutStore
from tether.rollouts.tracker import RolloutTracker

console = Console()


def synthetic_fleet(n: int, hws: int, sites: int, seed: int) -> list[Candidate]:
    rng = random.Random(seed)
    revisions = [chr(ord("A") + i) for i in range(hws)]
    weights = [2 ** (hws - i) for i in range(hws)]  # older revisions are the larger share
    hw = rng.choices(revisions, weights, k=n)
    site = [rng.randrange(sites) for _ in range(n)]
    fleet: list[Candidate] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("building the fleet", total=n)
        for i in range(n):
            fw = "1.9.0" if i % 50 == 0 else "2.0.0"
            fleet.append((f"CART{i:07d}", f"t{i % 20}", "retail-cart", hw[i], fw, f"s{site[i]}"))
            if i % 100_000 == 0:
                progress.update(task, completed=i)
    return fleet


def plan(fleet: list[Candidate], seed: int) -> tuple[float, list[int]]:
    started = time.perf_counter()
    optouts = OptOuts(tenants=frozenset({"t7"}), sites=frozenset({"s3", "s5"}))
    cohort = select(fleet, CohortSpec("retail-cart", from_fw=("2.0.0",)), optouts)
    order = stratified_order(cohort, seed)
    sizes = stage_sizes(parse_plan(), len(order))
    return time.perf_counter() - started, sizes


def reference_sort(fleet: list[Candidate]) -> float:
    started = time.perf_counter()
    sorted(fleet, key=_by_hw_and_site)
    return time.perf_counter() - started


def _by_hw_and_site(c: Candidate) -> tuple[str, str | None]:
    return c[3], c[5]


def status_reports(directory: Path, reports: int, batch: int) -> tuple[float, float, int]:
    devices = max(1, reports // 4)
    store = RolloutStore(f"sqlite:///{directory / 'entity.sqlite'}")
    members = [(f"CART{i:07d}", 0, "acme", "A", "s1", "2.0.0") for i in range(devices)]
    rid = store.create(
        CohortSpec("retail-cart"), "2.1.0", parse_plan("100%:0h"), [devices], members, 0
    )
    store.notify(rid, [m[0] for m in members], 0)
    events: list[AcceptedEvent] = []
    for phase, (type_, body) in enumerate(
        [
            ("ota-status", {"rollout": rid, "version": "2.1.0", "state": "downloading"}),
            ("ota-status", {"rollout": rid, "version": "2.1.0", "state": "verifying"}),
            ("ota-status", {"rollout": rid, "version": "2.1.0", "state": "installed"}),
            ("boot", {"fw": "2.1.0", "slot": "b", "previous_fw": "2.0.0", "rolled_back": False}),
        ]
    ):
        for i in range(devices):
            seq = 10 + phase
            events.append(
                AcceptedEvent(
                    arrival=1000 * (phase + 1),
                    body=body,
                    clock_corrected=False,
                    dedupe_key=str(seq),
                    device_class="retail-cart",
                    device_ts=None,
                    door="mqtt",
                    seq=seq,
                    serial=f"CART{i:07d}",
                    tenant="acme",
                    ts=1000 * (phase + 1),
                    type=type_,
                    v=1,
                )
            )
    # the reference: the state machine alone, in memory
    started = time.perf_counter()
    states = {m[0]: "notified" for m in members}
    names = {"ota-status": None, "boot": "booted_clean"}
    for e in events:
        wanted = names[e.type] or e.body["state"]
        states[e.serial] = step(e.serial, states[e.serial], wanted)
    in_memory = time.perf_counter() - started
    tracker = RolloutTracker(None, store)  # type: ignore[arg-type]  (apply reads no stream)
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("status reports", total=len(events))
        for i in range(0, len(events), batch):
            tracker.apply(events[i : i + batch])
            progress.update(task, advance=min(batch, len(events) - i))
    through_store = time.perf_counter() - started
    counts = store.counts(rid)[0]
    store.close()
    if counts.get("booted_clean") != devices or counts.get(QUEUED):
        console.print(f"[red]not every device booted clean: {dict(counts)}[/]")
        sys.exit(1)
    return through_store, in_memory, len(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--hw", type=int, default=4, help="hardware revisions")
    parser.add_argument("--sites", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reports", type=int, default=100_000, help="status records to process")
    parser.add_argument("--batch", type=int, default=1000, help="records per tracker batch")
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite store goes")
    args = parser.parse_args()

    fleet = synthetic_fleet(args.devices, args.hw, args.sites, args.seed)
    with console.status("planning"):
        reference = reference_sort(fleet)
        planning, sizes = plan(fleet, args.seed)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        through_store, in_memory, n = status_reports(Path(tmp), args.reports, args.batch)

    table = Table("measure", "figure", "reference (same run)", "ratio")
    table.add_row(
        f"plan a rollout over {args.devices:,} devices",
        f"{planning:.2f} s (stages {' / '.join(f'{s:,}' for s in sizes)})",
        f"sorted() by hw, site: {reference:.2f} s",
        f"{planning / reference:.1f}x the sort",
    )
    table.add_row(
        f"status reports through the tracker (SQLite, batches of {args.batch})",
        f"{n / through_store:,.0f} reports/s",
        f"state machine in memory: {n / in_memory:,.0f} reports/s",
        f"{in_memory / through_store:.1%} of it",
    )
    console.print(table)


if __name__ == "__main__":
    main()
