"""The shared clock and the event loop: time order, compression, holds, posts from threads."""

from __future__ import annotations

import threading

import pytest

from tether.sim.clock import WEEK, SimClock
from tether.sim.engine import Engine
from tether.sim.errors import SimulationError


class Real:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_compressed_clock_runs_at_its_speed_and_never_past_its_limit() -> None:
    real = Real()
    clock = SimClock(1_000_000.0, speed=WEEK / 60, monotonic=real)  # a week a minute
    assert clock.now() == 1_000_000.0  # held at the start until released
    wait = clock.run_until(1_000_000.0 + 86400)
    assert wait == pytest.approx(60 / 7)  # a day takes a seventh of a minute
    real.t += 3.0
    assert clock.now() == pytest.approx(1_000_000.0 + 3.0 * WEEK / 60)
    real.t += 100.0
    assert clock.now() == 1_000_000.0 + 86400  # never past the limit
    assert clock.hold(1_000_000.0 + 500.0) == 1_000_000.0 + 86400  # never backwards


def test_a_clock_without_speed_jumps() -> None:
    clock = SimClock(50.0)
    assert clock.run_until(5000.0) == 0.0 and clock() == 5000.0
    assert clock.hold(6000.0) == 6000.0 and clock.elapsed == 5950.0


def test_actions_run_in_time_order_with_the_clock_held_at_their_time() -> None:
    clock = SimClock(0.0)
    engine = Engine(clock)
    seen: list[tuple[str, float]] = []
    for name, at in (("c", 30.0), ("a", 10.0), ("b", 20.0), ("late", 500.0)):
        engine.at(at, lambda n=name: seen.append((n, engine.now)))  # type: ignore[misc]
    engine.after(15.0, lambda: engine.after(1.0, lambda: seen.append(("chained", engine.now))))
    engine.run(100.0)
    assert seen == [("a", 10.0), ("chained", 16.0), ("b", 20.0), ("c", 30.0)]
    assert engine.now == 100.0
    engine.run(1000.0)
    assert seen[-1] == ("late", 500.0)


def test_a_hold_waits_for_a_posted_answer_from_another_thread() -> None:
    clock = SimClock(0.0)
    engine = Engine(clock, stall_seconds=10)
    pending = {"since": 5.0}
    engine.add_hold(lambda: (pending["since"] + 1.0, "an answer") if pending else None)
    order: list[str] = []

    def answer() -> None:
        order.append(f"answered at {engine.now}")
        pending.clear()

    engine.at(5.0, lambda: threading.Timer(0.2, engine.post, (answer,)).start())
    engine.at(50.0, lambda: order.append(f"next event at {engine.now}"))
    engine.run(100.0)
    assert order == ["answered at 5.0", "next event at 50.0"]


def test_a_hold_that_never_clears_is_a_stall() -> None:
    engine = Engine(SimClock(0.0), stall_seconds=0.3)
    engine.add_hold(lambda: (1.0, "the broker to acknowledge a record of X"))
    engine.at(10.0, lambda: None)
    with pytest.raises(SimulationError, match="broker to acknowledge a record of X"):
        engine.run(100.0)


def test_stop_when_ends_a_run_early() -> None:
    engine = Engine(SimClock(0.0))
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(engine.now)
        engine.after(10.0, tick)

    engine.at(0.0, tick)
    engine.run(1000.0, stop_when=lambda: len(ticks) >= 5)
    assert ticks == [0.0, 10.0, 20.0, 30.0, 40.0] and engine.now == 40.0
