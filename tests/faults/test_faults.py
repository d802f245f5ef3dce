"""Fault tests on the production engines: real processes, real faults, counted results.

Each test ends with every (device, seq) it sent exactly once in the telemetry
store (PostgreSQL) and nothing else there. The records travel as in
production: into the raw stream (JetStream), through ``tether worker --gate``
processes sharing one work group, into the event log, and through a
``tether worker --projector`` process into the store.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import (
    HEALTH,
    Deployment,
    assert_exactly_once,
    deployment,
    feed,
    rng_for,
    signed_fleet,
    wait_until,
)
from tests.ingest.helpers import MqttDevice, device
from tether.gate.submission import Submission
from tether.runtime import Runtime
from tether.testing import NatsCluster, NatsInstance, PostgresInstance, free_port

pytestmark = pytest.mark.timeout(1200)


@pytest.fixture
def databases(postgres: PostgresInstance) -> Iterator[tuple[str, str]]:
    """An entity and a telemetry database of the test's own on the session's cluster."""
    names = [f"f_{uuid.uuid4().hex[:12]}_{kind}" for kind in ("entity", "telemetry")]
    urls = [postgres.create_database(name) for name in names]
    yield urls[0], urls[1]
    for name in names:
        postgres.drop_database(name)


def prefix() -> str:
    return f"f{uuid.uuid4().hex[:10]}"


def landed(dep: Deployment, total: int) -> bool:
    return dep.platform.telemetry.count() == total


def first_half(dep: Deployment, subs: list[Submission], stored: int) -> list[Submission]:
    """Start two gate workers and a projector, feed half the records, wait until
    ``stored`` of them are in the store; return the other half."""
    dep.start("gate")
    dep.start("gate")
    dep.start("projector")
    half = len(subs) // 2
    feed(dep.platform.stream("raw"), subs[:half])
    wait_until(lambda: dep.platform.telemetry.count() > stored, 300, "a first part", dep)
    return subs[half:]


def test_two_gate_workers_one_sigkilled_twenty_times(
    tmp_path: Path, databases: tuple[str, str], nats: NatsInstance
) -> None:
    """200,000 signed records from 5,000 devices; a gate worker dies at 20 random moments."""
    entity, telemetry = databases
    with deployment(tmp_path / "d", entity, telemetry, f"{nats.url}/?prefix={prefix()}") as dep:
        subs, expected = signed_fleet(dep.platform, devices=5000, records=40)
        assert len(subs) == 200_000
        dep.start("gate")
        dep.start("gate")
        dep.start("projector")
        raw = dep.platform.stream("raw")
        rng = rng_for("gate-kills")
        kills, portions = 20, 20
        size = len(subs) // portions
        for k in range(portions):
            feed(raw, subs[k * size : (k + 1) * size])
            time.sleep(rng.uniform(0.5, 2.5))
            dep.kill(dep.procs["gate"][0])  # the longer-running of the two
            dep.start("gate", ready=False)  # back while the run goes on
        wait_until(lambda: landed(dep, len(subs)), 900, "all 200,000 records stored", dep)
        assert_exactly_once(dep.platform, expected)
        assert dep.started == 3 + kills


def test_postgres_stopped_and_restarted_mid_run(tmp_path: Path, nats: NatsInstance) -> None:
    with PostgresInstance() as pg:
        entity = pg.create_database("entity")
        telemetry = pg.create_database("telemetry")
        with deployment(tmp_path / "d", entity, telemetry, f"{nats.url}/?prefix={prefix()}") as dep:
            subs, expected = signed_fleet(dep.platform, devices=500, records=40)
            rest = first_half(dep, subs, stored=2000)
            pg._shutdown()  # the database goes away mid-run ...
            feed(dep.platform.stream("raw"), rest)  # ... while records keep arriving
            time.sleep(5)
            pg.restart()
            wait_until(lambda: landed(dep, len(subs)), 600, "all records stored", dep)
            assert_exactly_once(dep.platform, expected)
            assert all(p.poll() is None for ps in dep.procs.values() for p in ps), dep.logs()


def test_a_nats_node_lost_mid_run_with_replicated_streams(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    entity, telemetry = databases
    with NatsCluster(3) as cluster:
        url = f"{cluster.url}/?prefix={prefix()}&replicas=3&timeout=10"
        with deployment(tmp_path / "d", entity, telemetry, url) as dep:
            subs, expected = signed_fleet(dep.platform, devices=300, records=40)
            rest = first_half(dep, subs, stored=1000)
            cluster.nodes[0].kill()  # SIGKILL: one of three nodes, mid-run
            raw = dep.platform.stream("raw")  # appends fail while a new leader is elected
            wait_until(lambda: feed(raw, rest) is None, 120, "feeding the rest", dep)
            wait_until(lambda: landed(dep, len(subs)), 600, "all records stored", dep)
            assert_exactly_once(dep.platform, expected)


def test_the_bridge_sigkilled_with_records_queued_in_mosquitto(
    tmp_path: Path, databases: tuple[str, str], nats: NatsInstance
) -> None:
    entity, telemetry = databases
    mqtt = {"enabled": True, "port": free_port(), "internal_port": free_port()}
    url = f"{nats.url}/?prefix={prefix()}"
    with deployment(tmp_path / "d", entity, telemetry, url, mqtt=mqtt) as dep:
        p = dep.platform
        p.authority.init_tenant("acme")
        front = Runtime(p, roles=[])  # the broker tether serve runs, and nothing else
        front.start()
        try:
            dep.start("bridge")
            dep.start("gate")
            dep.start("projector")
            carts = [MqttDevice(p, front, device(p), tmp_path) for _ in range(20)]
            records = 60
            for seq in range(1, records + 1):
                for cart in carts:
                    cart.send(cart.dev.record(seq, "health", HEALTH))
                if seq == 20:
                    dep.kill(dep.procs["bridge"][0])  # records now queue in Mosquitto
                if seq == 45:
                    dep.start("bridge")  # it takes up the queued session where it was
            total = len(carts) * records
            wait_until(lambda: landed(dep, total), 120, "every MQTT record stored", dep)
            expected = {c.dev.serial: list(range(1, records + 1)) for c in carts}
            assert_exactly_once(p, expected)
        finally:
            front.stop()
