"""Gate workers in processes of their own share the raw stream; killing one loses nothing.

``tether serve``'s part (front door, bridge, projector) runs in the test's
process with the gate taken out of it (``workers.in_serve``); two ``tether
worker --gate`` processes judge the MQTT records, one of them SIGKILLed and
started again while devices publish. Every record lands once, and reject
notices reach devices from a worker's own notice session.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from tests.identity.conftest import Clock
from tests.ingest.helpers import HEALTH, MqttDevice, device, wait_for
from tether.platform import Platform
from tether.runtime import Runtime
from tether.settings import load_settings
from tether.testing import free_port
from tether.testing.workers import start_worker, stop_processes

DEVICES, RECORDS = 12, 40


def write_config(tmp: Path) -> Path:
    config = tmp / "tether.toml"
    config.write_text(
        f"""data_dir = "{tmp / "t"}"
admin_token = "op"

[mqtt]
port = {free_port()}
internal_port = {free_port()}

[ingest]
lease_seconds = 2

[workers]
in_serve = ["bridge", "projector", "rejects", "retention"]
"""
    )
    return config


@pytest.mark.engine("mosquitto")
def test_two_gate_workers_one_killed_again_and_again(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    settings = load_settings({}, config_file=config, environ={})
    p = Platform.open(settings, clock=Clock(time.time()))
    p.authority.init_tenant("acme")
    rt = Runtime(p, roles=settings.workers.in_serve)
    rt.start()
    log = tmp_path / "workers.log"
    started = 0

    def ready() -> None:  # wait until every worker started has said it runs
        wait_for(lambda: log.read_text().count(": gate (Ctrl-C stops)") == started, 60)

    workers = [start_worker(config, ["gate"], log) for _ in range(2)]
    started = 2
    try:
        ready()
        carts = [MqttDevice(p, rt, device(p), tmp_path) for _ in range(DEVICES)]
        rng = random.Random(3)
        kills = 0
        for seq in range(1, RECORDS + 1):
            for cart in carts:
                cart.send(cart.dev.record(seq, "health", HEALTH))
            time.sleep(rng.uniform(0, 0.1))
            if seq % 10 == 0:
                victim = workers[rng.randrange(2)]
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                workers[workers.index(victim)] = start_worker(config, ["gate"], log)
                started += 1
                kills += 1
                ready()
        forger = carts[0]
        forger.send(carts[1].dev.record(999, "health", HEALTH))  # signed by another device
        assert forger.reject(timeout=60) == "bad_signature"
        wait_for(lambda: p.telemetry.count() == DEVICES * RECORDS, timeout=120)
        for cart in carts:
            assert sorted(p.telemetry.seqs(cart.dev.serial)) == list(range(1, RECORDS + 1))
        assert kills == 4
        assert all(w.poll() is None for w in workers), log.read_text()
    finally:
        stop_processes(workers)
        rt.stop()
        p.close()
    assert log.read_text().count("stopped") == 2  # the two left were stopped cleanly
