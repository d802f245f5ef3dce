"""Making and deciding rollouts: create (cohort, trust check, plan), release, abort, opt-outs.

``Rollouts`` joins the registry (which devices exist, their class, hardware
and tenant), device state (their firmware, site, trust anchors), the artifact
catalog (the image and its signed manifest) and the rollout store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tether.firmware.catalog import ArtifactCatalog
from tether.registry.base import DEVICE_ACTIVE, DeviceRegistry
from tether.rollouts.health import HaltPolicy
from tether.rollouts.model import (
    ABORTED,
    HALTED,
    LIVE,
    ON_NEW,
    RUNNING,
    CohortSpec,
    Rollout,
    RolloutError,
    TrustDependencyError,
)
from tether.rollouts.plan import (
    DEFAULT_PLAN,
    HW,
    SERIAL,
    SITE,
    Candidate,
    Window,
    parse_plan,
    select,
    stage_sizes,
    stratified_order,
)
from tether.rollouts.store import RolloutStore


@dataclass(frozen=True)
class Planned:
    rollout: Rollout
    cohort: int


class Rollouts:
    def __init__(
        self,
        store: RolloutStore,
        registry: DeviceRegistry,
        artifacts: ArtifactCatalog,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.registry = registry
        self.artifacts = artifacts
        self.clock = clock

    def candidates(self, device_class: str) -> list[Candidate]:
        """Active devices of the class, with the firmware, hardware and site they last reported."""
        state = {row[0]: row for row in self.store.fleet(device_class)}
        out: list[Candidate] = []
        for d in self.registry.list_devices():
            if d.device_class != device_class or d.status != DEVICE_ACTIVE:
                continue
            s = state.get(d.serial)
            hw = (s[2] if s else None) or d.hw
            out.append(
                (d.serial, d.tenant, d.device_class, hw, s[3] if s else None, s[4] if s else None)
            )
        return out

    def create(
        self,
        spec: CohortSpec,
        version: str,
        plan: str = DEFAULT_PLAN,
        windows: dict[str, Window] | None = None,
        seed: int = 0,
        policy: HaltPolicy | None = None,
    ) -> Planned:
        """Plan and record a rollout; refuse it if devices lack a trust anchor the image needs."""
        artifact = self.artifacts.get(spec.device_class, version)
        manifest = artifact.manifest.manifest()
        outside = sorted(set(spec.hw) - set(artifact.hw))
        if outside:
            raise RolloutError(
                f"{spec.device_class} {version} is built for hw {', '.join(artifact.hw)}, "
                f"not {', '.join(outside)}"
            )
        if not spec.hw:
            spec = CohortSpec(**{**spec.__dict__, "hw": tuple(artifact.hw)})
        stages = parse_plan(plan)
        cohort = select(self.candidates(spec.device_class), spec, self.store.optouts())
        cohort = [c for c in cohort if c[4] != version]  # already there
        if not cohort:
            raise RolloutError(
                "no device matches the cohort (after opt-outs, and leaving out devices already "
                f"on {version}); see: tether devices list"
            )
        if manifest.requires_trust:
            self.check_trust(cohort, manifest.requires_trust)
        order = stratified_order(cohort, seed)
        sizes = stage_sizes(stages, len(order))
        members = []
        start = 0
        for index, size in enumerate(sizes):
            for c in order[start : start + size]:
                members.append((c[SERIAL], index, c[1], c[HW], c[SITE], c[4]))
            start += size
        rid = self.store.create(
            spec,
            version,
            stages,
            sizes,
            members,
            self.clock(),
            seed,
            {site: str(w) for site, w in (windows or {}).items()},
            (policy or HaltPolicy()).to_dict(),
        )
        return Planned(self.store.get(rid), len(order))

    def check_trust(self, cohort: Sequence[Candidate], required: Sequence[str]) -> None:
        """TrustDependencyError naming the devices that have not acknowledged every anchor."""
        anchors = self.store.trust_anchors([c[SERIAL] for c in cohort])
        need = set(required)
        lacking = sorted(c[SERIAL] for c in cohort if not need <= set(anchors.get(c[SERIAL]) or ()))
        if lacking:
            raise TrustDependencyError(sorted(need), lacking)

    def release(self, rid: int) -> str:
        """A human's decision: lift a halt, or (running) start the next stage now."""
        rollout = self.store.get(rid)
        now = self.clock()
        if rollout.state == HALTED:
            self.store.release(rid, now)
            return "released the halt; the current stage continues"
        if rollout.state != RUNNING:
            raise RolloutError(f"rollout {rid} is {rollout.state}; only a live rollout is released")
        current = rollout.current_stage
        following = 0 if current is None else current.index + 1
        if following >= len(rollout.stages):
            raise RolloutError(f"rollout {rid} is at its last stage already")
        self.store.start_stage(rid, following, now)
        return f"started stage {following + 1} of {len(rollout.stages)}"

    def abort(self, rid: int, return_to_previous: bool = False, hw: Sequence[str] = ()) -> int:
        """End the rollout; return how many devices run the new version (to send back, if asked).

        ``hw`` narrows the return to those hardware revisions (one sick revision
        goes back, the others stay on the new version).
        """
        rollout = self.store.get(rid)
        if rollout.state not in LIVE:
            raise RolloutError(f"rollout {rid} is {rollout.state} already")
        if hw and not return_to_previous:
            raise RolloutError("--hw names the revisions to send back: add --return-to-previous")
        unknown = sorted(set(hw) - set(rollout.cohort.hw))
        if unknown:
            raise RolloutError(
                f"rollout {rid} targets hw {', '.join(rollout.cohort.hw)}, not {', '.join(unknown)}"
            )
        self.store.finish(rid, ABORTED, self.clock(), return_to_previous, hw)
        return sum(
            1 for d in self.store.devices(rid) if d.state in ON_NEW and (not hw or d.hw in hw)
        )
