"""Real deployments for the fault tests: production engines, worker processes, a fleet.

A ``Deployment`` writes one settings file naming the engines, opens a platform
on it in the test's process (to provision devices and count what landed) and
starts ``tether worker`` processes from the same file, which the tests kill and
start again. Records are signed by the devices' simulated secure elements before
any clock starts, and fed to the raw stream as the MQTT bridge would, in
portions, so faults can be timed against a run that is still going.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tether.gate.submission import MQTT, Submission
from tether.platform import Platform
from tether.settings import load_settings
from tether.store import migrations
from tether.stream.base import Stream
from tether.testing.workers import start_worker, stop_processes

HEALTH = {"battery_pct": 70, "rssi_dbm": -61, "link": "wifi"}
READY = "(Ctrl-C stops)"  # what a worker prints once it runs


@dataclass
class Deployment:
    root: Path
    config: Path
    platform: Platform
    procs: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)
    started: int = 0

    def start(self, role: str, ready: bool = True) -> subprocess.Popen[bytes]:
        """``tether worker --ROLE`` in a process of its own, logging under ``root/logs``.

        With ``ready``, return once the worker says it runs (a bridge: once it holds
        its session on the broker, so messages for it queue there from then on).
        """
        log = self.root / "logs" / f"{role}.log"
        log.parent.mkdir(exist_ok=True)
        said = log.read_text().count(READY) if log.exists() else 0
        proc = start_worker(self.config, [role], log)
        self.procs.setdefault(role, []).append(proc)
        self.started += 1
        if ready:
            deadline = time.monotonic() + 60
            while log.read_text().count(READY) == said:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"tether worker --{role} did not start:\n{self.logs()}")
                time.sleep(0.1)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for procs in self.procs.values():
            if proc in procs:
                procs.remove(proc)

    def status(self) -> str:
        """Where the records are, for failure messages."""
        p = self.platform
        try:
            events = p.stream("events")
            return (
                f"raw {p.stream('raw').last_offset()}, gate pending {p.gate_group.pending()}, "
                f"events {events.last_offset()} (projected to {events.position('projector')}), "
                f"stored {p.telemetry.count()}"
            )
        except Exception as exc:  # an engine mid-fault
            return f"unknown ({exc})"

    def logs(self) -> str:
        out = []
        for log in sorted((self.root / "logs").glob("*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-40:]))
        return "\n".join(out)

    def stop(self) -> None:
        stop_processes(p for procs in self.procs.values() for p in procs)
        self.procs.clear()


@contextmanager
def deployment(
    root: Path, entity_url: str, telemetry_url: str, stream_url: str, **sections: dict[str, object]
) -> Iterator[Deployment]:
    """A platform on these engines (migrated here), its settings file, and its workers."""
    for target, url in ((migrations.ENTITY, entity_url), (migrations.TELEMETRY, telemetry_url)):
        migrations.upgrade(target, url)
    root.mkdir(parents=True, exist_ok=True)
    config = root / "tether.toml"
    lines = [
        f"data_dir = {json.dumps(str(root / 'data'))}",
        f"entity_url = {json.dumps(entity_url)}",
        f"telemetry_url = {json.dumps(telemetry_url)}",
        f"stream_url = {json.dumps(stream_url)}",
        'admin_token = "op"',
    ]
    sections = {"mqtt": {"enabled": False}, "ingest": {"lease_seconds": 3}, **sections}
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    config.write_text("\n".join(lines) + "\n")
    p = Platform.open(load_settings({}, config_file=config, environ={}))
    dep = Deployment(root, config, p)
    try:
        yield dep
    finally:
        dep.stop()
        p.close()


def signed_fleet(
    p: Platform, devices: int, records: int, tenant: str = "acme"
) -> tuple[list[Submission], dict[str, list[int]]]:
    """``devices`` carts, ``records`` signed health records each, interleaved as a fleet sends.

    Returns the submissions (door ``mqtt``, as the bridge makes them) and, per
    serial, the seqs the telemetry store must end up holding.
    """
    if tenant not in p.registry.list_tenants():
        p.authority.init_tenant(tenant)
    made = p.provisioner.provision(p.secure_elements, tenant, "retail-cart", "3", devices)
    arrival = int(time.time() * 1000)
    per_device: list[list[Submission]] = []
    expected: dict[str, list[int]] = {}
    for device in made:
        element = p.secure_elements.open(device.serial)
        subs = []
        for seq in range(1, records + 1):
            payload = json.dumps(
                {
                    "device": device.serial,
                    "seq": seq,
                    "ts": arrival - (records - seq) * 60_000,
                    "type": "health",
                    "v": 1,
                    "body": HEALTH,
                }
            ).encode()
            subs.append(Submission(device.serial, payload + element.sign(payload), MQTT, arrival))
        per_device.append(subs)
        expected[device.serial] = list(range(1, records + 1))
    interleaved = [sub for round_ in zip(*per_device, strict=True) for sub in round_]
    return interleaved, expected


def feed(raw: Stream, subs: list[Submission], batch: int = 1000) -> None:
    """Append to the raw stream as the bridge does, in batches."""
    for i in range(0, len(subs), batch):
        raw.append([s.entry() for s in subs[i : i + batch]])


def wait_until(check: Callable[[], bool], timeout: float, what: str, dep: Deployment) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # an engine mid-fault: look again
            pass
        time.sleep(0.5)
    raise AssertionError(
        f"{what} not reached in {timeout:.0f} s: {dep.status()}; worker logs:\n{dep.logs()}"
    )


def assert_exactly_once(p: Platform, expected: dict[str, list[int]]) -> None:
    """Every (device, seq) expected is in the telemetry store, once, and nothing else is."""
    total = sum(len(seqs) for seqs in expected.values())
    assert p.telemetry.count() == total
    for serial, seqs in expected.items():
        assert sorted(p.telemetry.seqs(serial)) == seqs, serial


def rng_for(name: str) -> random.Random:
    """A seeded generator per test, so a failing schedule can be run again."""
    return random.Random(name)
