"""Rollouts as data: their states, the per-device update state machine, and the typed errors.

Every per-device change goes through :func:`step`, which refuses a change the
state machine does not allow with :class:`IllegalTransitionError`. Reporting the
state a device is already in is not a change and is always allowed (records are
delivered at least once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tether.errors import ConflictError, TetherError

# Rollout states.
RUNNING = "running"
HALTED = "halted"
COMPLETED = "completed"
ABORTED = "aborted"
ROLLOUT_STATES = (RUNNING, HALTED, COMPLETED, ABORTED)
LIVE = (RUNNING, HALTED)

# Per-device update states.
QUEUED = "queued"
NOTIFIED = "notified"
DOWNLOADING = "downloading"
VERIFYING = "verifying"
INSTALLED = "installed"
BOOTED = "booted_clean"
FAILED = "failed"
ROLLED_BACK = "rolled_back"
# After ``abort --return-to-previous``: sent the previous version, then back on it.
RETURNING = "returning"
RETURNED = "returned"
DEVICE_STATES = (
    QUEUED,
    NOTIFIED,
    DOWNLOADING,
    VERIFYING,
    INSTALLED,
    BOOTED,
    FAILED,
    ROLLED_BACK,
    RETURNING,
    RETURNED,
)
# What a device may say in an ``ota-status`` record (booting is told by ``boot``).
REPORTED_STATES = (DOWNLOADING, VERIFYING, INSTALLED, FAILED)
ON_NEW = frozenset({INSTALLED, BOOTED})

_ALLOWED: dict[str, frozenset[str]] = {
    QUEUED: frozenset({NOTIFIED, FAILED}),
    NOTIFIED: frozenset({DOWNLOADING, VERIFYING, INSTALLED, BOOTED, FAILED, ROLLED_BACK}),
    DOWNLOADING: frozenset({VERIFYING, INSTALLED, BOOTED, FAILED, ROLLED_BACK}),
    VERIFYING: frozenset({INSTALLED, BOOTED, FAILED, ROLLED_BACK}),
    INSTALLED: frozenset({BOOTED, FAILED, ROLLED_BACK, RETURNING}),
    # A device that booted clean can still fall back to its old slot later.
    BOOTED: frozenset({ROLLED_BACK, RETURNING}),
    RETURNING: frozenset({RETURNED, ROLLED_BACK}),
    RETURNED: frozenset(),
    # A failed device may be notified again (a retry), or report that it fell back.
    FAILED: frozenset({NOTIFIED, ROLLED_BACK}),
    ROLLED_BACK: frozenset({NOTIFIED}),
}


class RolloutError(TetherError):
    """A rollout cannot be made or changed as asked."""


class IllegalTransitionError(ConflictError):
    """A device's update state cannot move from ``current`` to ``wanted``."""

    def __init__(self, serial: str, current: str, wanted: str) -> None:
        allowed = ", ".join(sorted(_ALLOWED.get(current, frozenset()))) or "nothing"
        super().__init__(
            f"device {serial}: its update cannot go from {current} to {wanted} "
            f"(from {current} it may go to: {allowed})"
        )
        self.serial, self.current, self.wanted = serial, current, wanted


class TrustDependencyError(RolloutError):
    """The image needs trust anchors some targeted devices have not acknowledged."""

    def __init__(self, missing: Sequence[str], lacking: Sequence[str], shown: int = 5) -> None:
        names = ", ".join(lacking[:shown])
        more = f" and {len(lacking) - shown} more" if len(lacking) > shown else ""
        super().__init__(
            f"the image requires trust anchor(s) {', '.join(missing)}, which "
            f"{len(lacking)} targeted device(s) have not acknowledged in a hello: "
            f"{names}{more}; roll the anchor out first, or leave these devices out"
        )
        self.missing = list(missing)
        self.devices = list(lacking)


def allowed(current: str, wanted: str) -> bool:
    return current == wanted or wanted in _ALLOWED.get(current, frozenset())


def step(serial: str, current: str, wanted: str) -> str:
    """The state after ``wanted`` is reported in ``current``, or IllegalTransitionError."""
    if wanted not in DEVICE_STATES:
        raise RolloutError(f"unknown update state {wanted!r}; known: {', '.join(DEVICE_STATES)}")
    if not allowed(current, wanted):
        raise IllegalTransitionError(serial, current, wanted)
    return wanted


@dataclass(frozen=True)
class Stage:
    """One step of a plan: a device count (the canary) or a share of the cohort, and a soak."""

    amount: float
    is_share: bool
    soak_s: int
    label: str = ""

    def describe(self) -> str:
        size = f"{self.amount:g}%" if self.is_share else f"{int(self.amount)} devices"
        return f"{self.label or size} ({size}, soak {_hours(self.soak_s)})"


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:g}h"


@dataclass(frozen=True)
class CohortSpec:
    """Which devices a rollout targets. Empty lists mean 'any'."""

    device_class: str
    hw: tuple[str, ...] = ()
    from_fw: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()  # exact names or shell patterns (``de-*``, a region)
    devices: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()


@dataclass(frozen=True)
class HaltReason:
    rule: str
    detail: str
    at: float
    hw: str | None = None


@dataclass(frozen=True)
class StageRecord:
    index: int
    stage: Stage
    size: int
    started_at: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True)
class Rollout:
    id: int
    device_class: str
    version: str
    cohort: CohortSpec
    state: str
    created_at: float
    seed: int
    stages: list[StageRecord] = field(default_factory=list)
    halts: list[HaltReason] = field(default_factory=list)
    windows: dict[str, str] = field(default_factory=dict)
    policy: dict[str, float] = field(default_factory=dict)
    return_to_previous: bool = False
    return_hw: tuple[str, ...] = ()  # the revisions sent back; empty: all
    ended_at: float | None = None

    @property
    def current_stage(self) -> StageRecord | None:
        started = [s for s in self.stages if s.started_at is not None]
        return started[-1] if started else None


@dataclass(frozen=True)
class DeviceUpdate:
    """One device's part in one rollout."""

    serial: str
    stage: int
    hw: str
    site: str | None
    from_fw: str | None
    state: str
    reason: str | None = None
    changed_at: float = 0.0
    updated_at: float | None = None  # when it first booted the new version clean
    succeeded: bool = False  # ever reported booting the new version clean
    report_seq: int | None = None
