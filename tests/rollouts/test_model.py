"""The per-device update state machine."""

from __future__ import annotations

import pytest

from tether.rollouts.model import (
    BOOTED,
    DEVICE_STATES,
    DOWNLOADING,
    FAILED,
    INSTALLED,
    NOTIFIED,
    QUEUED,
    ROLLED_BACK,
    VERIFYING,
    IllegalTransitionError,
    RolloutError,
    step,
)


def test_the_happy_path_and_a_rollback_after_success() -> None:
    state = QUEUED
    for wanted in (NOTIFIED, DOWNLOADING, VERIFYING, INSTALLED, BOOTED, ROLLED_BACK):
        state = step("SN1", state, wanted)
    assert state == ROLLED_BACK


def test_repeating_a_state_is_not_a_change() -> None:
    for state in DEVICE_STATES:
        assert step("SN1", state, state) == state


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        (QUEUED, BOOTED),
        (BOOTED, DOWNLOADING),
        (INSTALLED, VERIFYING),
        (ROLLED_BACK, BOOTED),
        (QUEUED, INSTALLED),
    ],
)
def test_illegal_transitions_are_typed_errors(current: str, wanted: str) -> None:
    with pytest.raises(IllegalTransitionError) as info:
        step("SN1", current, wanted)
    assert info.value.serial == "SN1" and current in str(info.value)


def test_a_failed_device_may_be_retried_and_unknown_states_are_refused() -> None:
    assert step("SN1", FAILED, NOTIFIED) == NOTIFIED
    with pytest.raises(RolloutError, match="unknown update state"):
        step("SN1", QUEUED, "bricked")
