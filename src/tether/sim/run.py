"""One simulated run, start to finish: platform up, world built, lived, wound down, checked.

``run_scenario`` is what ``tether sim run`` and the tests call. After the
scenario's span the world winds down: every outage ends, trips under way
finish, carts and tools empty their queues; then the platform is given time
to land what reached its doors, and the check compares.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.sim.adversary import Adversary
from tether.sim.check import Comparison, StoreView, compare
from tether.sim.clock import SimClock
from tether.sim.engine import Engine
from tether.sim.errors import RunStopped, ScenarioError, SimulationError
from tether.sim.firmware import FleetFirmware, Operator, prepare
from tether.sim.gateway import Gateway
from tether.sim.harness import HOST, SimPlatform
from tether.sim.ledger import Ledger, delays
from tether.sim.mqtt import MqttHub
from tether.sim.scenario import Scenario
from tether.sim.world import World

WIND_DOWN = 8 * 3600.0  # simulated time allowed for trips to finish and queues to empty

Stage = Callable[[str, int, int], None]  # (what, done, total) while the world is built
Tick = Callable[[float, float, Counter[str]], None]  # (simulated elapsed, span, counts)


@dataclass
class RunReport:
    scenario: Scenario
    start: float  # simulated
    end: float  # simulated, after the wind-down
    speed: float | None
    real_seconds: float
    workdir: Path
    counts: Counter[str]
    comparison: Comparison
    ledger: Ledger  # the ground truth, device by device
    devices: dict[str, int] = field(default_factory=dict)  # by class
    # By class: how long records took from the device to a door (simulated seconds).
    delays: dict[str, dict[str, float]] = field(default_factory=dict)
    adversary: Adversary | None = None  # the attacks and their answers, when the scenario has any
    operator: Operator | None = None  # the rollouts made and decided, when the scenario has any
    # Per rollout at the end of the run: devices by update state.
    rollout_states: dict[int, dict[str, int]] = field(default_factory=dict)
    rollout_halts: dict[int, list[tuple[str, str | None, str]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.comparison.ok

    def miscalibrated(self) -> list[dict[str, Any]]:
        """Carts whose weight platforms read wrong: accepted records, for fleet health to find."""
        out = []
        for book in self.ledger.books.values():
            if book.miscalibrated is not None:
                scans = sum(1 for r in book.made.values() if r.type == "scan")
                out.append(
                    {
                        "serial": book.serial,
                        "store": book.site,
                        "scale": book.miscalibrated,
                        "scans": scans,
                    }
                )
        return sorted(out, key=lambda row: str(row["serial"]))

    def to_json(self) -> dict[str, Any]:
        """Everything the run did and found, for a test or a dashboard to read."""

        def iso(t: float) -> str:
            return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()

        return {
            "scenario": self.scenario.name,
            "seed": self.scenario.seed,
            "start": iso(self.start),
            "end": iso(self.end),
            "simulated_seconds": self.end - self.start,
            "speed": self.speed,
            "real_seconds": round(self.real_seconds, 3),
            "workdir": str(self.workdir),
            "devices": self.devices,
            "delays": self.delays,
            "did": dict(sorted(self.counts.items())),
            "expected": self.comparison.by_class(),
            "sessions": dict(self.comparison.sessions),
            "per_device": [
                {
                    "serial": d.serial,
                    "class": d.device_class,
                    "site": d.site,
                    "expected": d.expected,
                    "landed": d.landed,
                    "lost": d.lost,
                    "pending": d.pending,
                    "overwritten": d.overwritten,
                    "undelivered": d.undelivered,
                }
                for d in self.comparison.devices
            ],
            "attacks": [
                {
                    "attack": a.attack,
                    "how": a.how,
                    "serial": a.serial,
                    "account": a.account,
                    "expected": a.expected,
                    "answer": a.answer,
                }
                for a in (self.adversary.attempts if self.adversary else [])
            ],
            "stores_changed_by_attacks": self.adversary.changed if self.adversary else {},
            "miscalibrated": self.miscalibrated(),
            "rollouts": [
                {
                    "rollout": rid,
                    "class": spec.device_class,
                    "version": spec.version,
                    "states": self.rollout_states.get(rid, {}),
                    "halts": [
                        {"rule": rule, "hw": hw, "detail": detail}
                        for rule, hw, detail in self.rollout_halts.get(rid, [])
                    ],
                }
                for spec, rid in (self.operator.created if self.operator else [])
            ],
            "rollout_decisions": [
                {"at": iso(at), "rollout": rid, "what": what}
                for at, rid, what in (self.operator.decisions if self.operator else [])
            ],
            "rollouts_refused": self.operator.failures if self.operator else [],
            "ok": self.ok,
            "mismatches": [
                {"serial": m.serial, "class": m.device_class, "kind": m.kind, "detail": m.detail}
                for m in self.comparison.mismatches
            ],
        }


@contextmanager
def run_dir(workdir: Path | None, prefix: str) -> Iterator[Path]:
    """Where a run keeps its platform: ``workdir`` (new or empty), else a temporary
    directory removed when the run is over."""
    if workdir is None:
        temporary = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            yield temporary
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        return
    if workdir.exists() and any(workdir.iterdir()):
        raise ScenarioError(
            f"--workdir {workdir} is not empty; a run needs a fresh platform: name a new "
            "or empty directory"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    yield workdir


def run_scenario(
    scenario: Scenario,
    workdir: Path,
    speed: float | str | None = "scenario",
    on_stage: Stage | None = None,
    on_tick: Tick | None = None,
    on_ready: Callable[[SimPlatform], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> RunReport:
    """Run ``scenario`` against a fresh platform in ``workdir``; ``speed`` overrides its own.

    ``on_ready`` is given the platform once its doors are open; when ``stop()``
    turns true the run ends at once with :class:`RunStopped`, the platform and
    every process it started stopped, nothing compared.
    """
    stopped = stop or (lambda: False)

    def check_stop() -> None:
        if stopped():
            raise RunStopped("the run was stopped before it ended")

    real_start = time.monotonic()
    pace = scenario.speed if speed == "scenario" else speed
    assert pace is None or isinstance(pace, float)
    clock = SimClock(scenario.begins(time.time()), pace)
    fleet = scenario.fleet
    carts = sum(s.carts for s in fleet.carts.stores)
    needs_mqtt = carts + sum(s.tools for s in fleet.tools.sites) > 0
    target = SimPlatform(workdir / "platform", clock, scenario.tenant, needs_mqtt)
    engine = Engine(clock)
    ledger = Ledger()
    gateway: Gateway | None = None
    hub: MqttHub | None = None

    def stage(what: str, done: int, total: int) -> None:
        if on_stage is not None:
            on_stage(what, done, total)
        check_stop()

    try:
        stage("starting the platform", 0, 1)
        target.start()
        stage("starting the platform", 1, 1)
        if on_ready is not None:
            on_ready(target)
        gateway = Gateway(HOST, target.https_port, target.service_ca_pem)
        firmware: FleetFirmware | None = None
        if scenario.rollouts.enabled:
            stage("firmware images", 0, 1)
            firmware = prepare(target.platform, scenario, workdir / "images")
            stage("firmware images", 1, 1)
        if needs_mqtt:
            hub = MqttHub(
                engine, HOST, target.mqtt_port, target.broker_ca, scenario.networks.ack_within
            )
        world = World(
            scenario,
            engine,
            ledger,
            target.platform,
            gateway,
            hub,
            workdir / "devices",
            clock.start,
            stage,
            firmware,
            (HOST, target.https_port, target.service_ca_pem),
        )
        world.build(target.operator_token)
        if hub is not None:
            hub.start()
        world.begin()
        operator: Operator | None = None
        if firmware is not None:
            operator = Operator(target.platform, engine, ledger, world.end)
            operator.begin(scenario.rollouts.create, clock.start)
        adversary: Adversary | None = None
        if scenario.adversaries.attacks:
            adversary = Adversary(
                scenario.adversaries,
                scenario.seed,
                world.households,
                ledger,
                gateway,
                target.platform,
                target.land,
                clock.now,
            )
            engine.at(clock.start + scenario.attacks_at, adversary.strike)

        def tick() -> None:
            if on_tick is not None:
                on_tick(clock.now() - clock.start, scenario.duration, ledger.counts)

        engine.run(world.end, stop_when=stop, tick=tick)
        check_stop()
        world.restore_networks()
        engine.run(world.end + WIND_DOWN, stop_when=lambda: world.quiet or stopped(), tick=tick)
        check_stop()
        end = clock.now()
        undelivered = world.undelivered()
        if hub is not None:
            hub.stop()
            hub = None
        stage("landing", 0, 1)
        expected = sum(len(book.expected().records) for book in ledger.books.values())
        target.settle(expected, stop=stopped)
        check_stop()
        stage("landing", 1, 1)
        comparison = compare(ledger, StoreView(target.platform), undelivered)
        states = (
            {rid: dict(c) for rid, c in operator.states().items()} if operator is not None else {}
        )
        halts = operator.halts() if operator is not None else {}
        if adversary is not None:
            if not adversary.struck:
                raise SimulationError("the adversaries never struck: the run ended before them")
            comparison.mismatches += adversary.mismatches()
        devices = Counter(book.device_class for book in ledger.books.values())
        late = {}
        for cls in devices:
            spans = delays([b for b in ledger.books.values() if b.device_class == cls], clock.start)
            if spans:
                late[cls] = {
                    "records": len(spans),
                    "median": spans[len(spans) // 2],
                    "p90": spans[int(len(spans) * 0.9)],
                    "max": spans[-1],
                    "held_back": sum(1 for s in spans if s > scenario.networks.ack_within),
                }
        return RunReport(
            scenario,
            clock.start,
            end,
            pace,
            time.monotonic() - real_start,
            workdir,
            ledger.counts,
            comparison,
            ledger,
            dict(devices),
            late,
            adversary,
            operator,
            states,
            halts,
        )
    finally:
        if hub is not None:
            hub.stop()
        if gateway is not None:
            gateway.close()
        target.stop()
