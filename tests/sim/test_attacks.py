"""Acceptance, adversaries: every forged, replayed or remotely re-paired attempt is refused
with the contract's code; none changes any store.

The shipped ``attacks`` scenario: brushes through the HTTPS door with real
account tokens, carts over MQTT, three of them with miscalibrated weight
platforms whose genuine records are accepted and listed for fleet health.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tether.sim.run import run_scenario
from tether.sim.scenario import load_scenario

pytestmark = pytest.mark.engine("mosquitto")


def test_adversaries_are_refused_and_change_nothing(tmp_path: Path) -> None:
    report = run_scenario(load_scenario("attacks"), tmp_path, speed=None)
    assert report.ok, "\n".join(str(m) for m in report.comparison.mismatches[:30])
    adversary = report.adversary
    assert adversary is not None and adversary.struck
    attempts = adversary.attempts
    assert all(a.answer == a.expected for a in attempts)
    assert adversary.changed == {}
    by_attack = Counter(a.attack for a in attempts)
    assert by_attack["forger"] == 40
    assert by_attack["replayer"] == 2 * 30
    assert by_attack["phisher"] == 4 * 5
    answers = Counter(a.answer for a in attempts)
    assert answers["accepted"] == 0
    assert answers["duplicate"] == 30
    assert answers["not_bonded"] == 30 + 5
    assert answers["bad_signature"] == 40 + 3 * 5
    bad = report.miscalibrated()
    assert len(bad) == 3 and all(row["scale"] != 1.0 and row["scans"] > 0 for row in bad)
    assert report.to_json()["attacks"][0]["answer"] == report.to_json()["attacks"][0]["expected"]
