"""``tether demo``'s engine: the demo scenario run in the background, watched through FleetView.

The run is an ordinary scenario run (``run_scenario``) on a thread of its own:
a fresh embedded platform with Mosquitto and the HTTPS door, a mixed fleet in
compressed time, adversaries. The foreground reads the platform through a
:class:`~tether.service.fleet.FleetView`, the same read the ``/v1/fleet`` route
answers, and may stop the run at any moment; stopping ends every process the
run started.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tether.service.fleet import FleetSnapshot, FleetView
from tether.sim.errors import RunStopped, ScenarioError
from tether.sim.harness import SimPlatform
from tether.sim.run import RunReport, run_scenario
from tether.sim.scenario import Scenario, load_scenario, parse_speed

DEMO = "demo"  # the shipped scenario


@dataclass
class Progress:
    stage: str = "starting"
    elapsed: float = 0.0  # simulated seconds since the start
    span: float = 0.0  # the scenario's simulated seconds
    started: float = 0.0  # simulated time of the start (epoch seconds)


def demo_scenario(
    source: str = DEMO, run_for: float | None = None, speed: str | None = None
) -> Scenario:
    """The scenario to show; ``run_for`` real seconds cut its span to what fits at its speed.

    A shortened run keeps its adversaries: they strike halfway when their time
    would fall after the new end.
    """
    chosen = load_scenario(source)
    overrides: dict[str, object] = {}
    pace = chosen.speed
    if speed is not None:
        try:
            pace = parse_speed(speed)
        except ValueError as exc:
            raise ScenarioError(f"--speed: {exc}") from None
        overrides["speed"] = speed
    if run_for is not None:
        if pace is None:
            raise ScenarioError("--for needs a speed: --speed max has no real duration")
        span = min(run_for * pace, chosen.duration)
        overrides["duration"] = f"{max(span, 60.0):.0f}s"
        if chosen.adversaries.attacks and chosen.attacks_at >= span:
            adversaries = chosen.adversaries.model_dump(by_alias=True, exclude_none=True)
            adversaries["at"] = f"{span / 2:.0f}s"
            overrides["adversaries"] = adversaries
        if any(o.at >= span for o in chosen.networks.stores.outages):
            networks = chosen.networks.model_dump(by_alias=True, exclude_none=True)
            stores = networks["stores"]
            stores["outages"] = [o for o in stores["outages"] if o["at"] < span]
            overrides["networks"] = networks
    return load_scenario(source, overrides) if overrides else chosen


class Demo:
    """One demo run on a background thread; ``snapshot()`` reads its platform."""

    def __init__(self, scenario: Scenario, workdir: Path) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.progress = Progress(span=scenario.duration)
        self.counts: Counter[str] = Counter()  # what the world did so far
        self.report: RunReport | None = None
        self.final: FleetSnapshot | None = None  # once everything landed, before the check
        self.error: BaseException | None = None
        self._view: FleetView | None = None
        self._stop = threading.Event()
        # Set when the run has ended and stopped what it started. (Waiting on this
        # rather than joining the thread: a join cut short by Ctrl-C can leave the
        # thread looking finished while it still runs.)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tether-demo", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        def on_stage(what: str, done: int, total: int) -> None:
            self.progress.stage = what
            if what == "landing" and done == total and self._view is not None:
                self.final = self._view.snapshot()

        def on_tick(elapsed: float, _span: float, counts: Counter[str]) -> None:
            self.progress.stage = "running"
            self.progress.elapsed = elapsed
            self.counts = Counter(counts)

        def on_ready(target: SimPlatform) -> None:
            self.progress.started = target.clock.start
            self._view = FleetView(target.platform)

        try:
            self.report = run_scenario(
                self.scenario,
                self.workdir,
                on_stage=on_stage,
                on_tick=on_tick,
                on_ready=on_ready,
                stop=self._stop.is_set,
            )
        except RunStopped:
            pass
        except BaseException as exc:  # the foreground reports it
            self.error = exc
        finally:
            self._view = None
            self.progress.stage = "stopped" if self._stop.is_set() else "finished"
            self._done.set()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def snapshot(self) -> FleetSnapshot | None:
        """What the platform holds now; None before its doors open or once it stopped."""
        view = self._view
        if view is None:
            return None
        try:
            return view.snapshot()
        except Exception:  # the run is closing the platform under us
            if self._view is None:
                return None
            raise

    def stop(self, timeout: float = 60.0) -> None:
        """End the run now and wait until it stopped what it started."""
        self._stop.set()
        self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True when it has."""
        return self._done.wait(timeout)
