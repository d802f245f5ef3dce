"""The firmware side of a run: images in the catalog, devices carrying them, an operator.

When a scenario has ``rollouts``:

- ``prepare`` makes the platform's firmware-signing key and adds every image of
  ``rollouts.images`` to the catalog (built with ``tether.sim.ota.image``, so
  each declares its defects in its own bytes), plus the image each device
  class runs at the start when the list does not name it;
- ``device_for`` gives a device an ``OtaDevice`` running that image from slot A,
  with the platform's firmware key as its trust anchor;
- ``Operator`` creates the scenario's rollouts at their times (a cart rollout once
  the platform knows every cart's firmware from its hello, or after six hours),
  as a person would with ``tether rollout create``, watches them hourly and, once one halts,
  answers after the scenario's delay: waits, aborts (returning devices to their
  previous version when asked), or releases.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tether.firmware.artifacts import NewImage
from tether.platform import Platform
from tether.rollouts.model import HALTED, LIVE, CohortSpec
from tether.rollouts.plan import Window
from tether.sim.engine import Engine
from tether.sim.ledger import Ledger
from tether.sim.ota.device import OtaDevice
from tether.sim.ota.image import Defects, build_image
from tether.sim.scenario import BRUSH_CLASS, CART_CLASS, ImageSpec, RolloutSpec, Scenario

log = logging.getLogger(__name__)
HOUR = 3600.0
WAIT_STEP, MAX_WAIT = 600.0, 6 * 3600.0  # the operator's patience for the fleet's hellos
IMAGE_SEED = 7  # every image of a run shares its filler, as builds of one code base do


def defects_of(spec: ImageSpec) -> Defects:
    d = spec.defects
    return Defects(
        crash_at_boot=tuple(d.crash_at_boot),
        crash_after=tuple((hw, seconds / HOUR) for hw, seconds in d.crash_after.items()),
        fault_rate=d.fault_rate,
        fault_hw=tuple(d.fault_hw),
    )


@dataclass
class FleetFirmware:
    """What the devices of a run start on, and the key they trust."""

    anchor: ec.EllipticCurvePublicKey
    running: dict[str, tuple[bytes, str, int]] = field(default_factory=dict)  # class: image
    slot_size: dict[str, int] = field(default_factory=dict)

    def device_for(self, device_class: str, hw: str) -> OtaDevice:
        image, version, security = self.running[device_class]
        return OtaDevice.provision(
            image,
            version,
            hw,
            [self.anchor],
            security_version=security,
            device_class=device_class,
            slot_size=self.slot_size[device_class],
        )


def prepare(platform: Platform, scenario: Scenario, directory: Path) -> FleetFirmware:
    """The firmware key, the scenario's images in the catalog, and what the devices run."""
    try:
        platform.firmware_key(create=True)
    except Exception:  # a platform kept from an earlier run has its key already
        platform.firmware_key()
    directory.mkdir(parents=True, exist_ok=True)
    spec = scenario.rollouts
    fleet = scenario.fleet
    current = {CART_CLASS: fleet.carts.fw, BRUSH_CLASS: fleet.brushes.fw}
    revisions = {
        CART_CLASS: sorted({s.hw or fleet.carts.hw for s in fleet.carts.stores}),
        BRUSH_CLASS: [fleet.brushes.hw],
    }
    images = list(spec.images)
    for cls, version in current.items():
        listed = [i for i in images if i.device_class == cls]
        if not listed or any(i.version == version for i in listed):
            continue
        # The image the class runs now, as the catalog holds it from its own release.
        images.insert(
            0,
            ImageSpec.model_validate(
                {
                    "class": cls,
                    "version": version,
                    "hw": sorted({*revisions[cls], *(h for i in listed for h in i.hw)}),
                    "security_version": min(i.security_version for i in listed),
                    "size": listed[0].size,
                }
            ),
        )
    out = FleetFirmware(platform.firmware_public_key())
    for image in images:
        data = build_image(image.version, image.size, defects_of(image), seed=IMAGE_SEED)
        path = directory / f"{image.device_class}-{image.version}.bin"
        path.write_bytes(data)
        platform.artifacts.add(
            NewImage(path, image.device_class, image.version, image.hw, image.security_version)
        )
        cls = image.device_class
        out.slot_size[cls] = max(out.slot_size.get(cls, 4096), image.size + 1024)
        if image.version == current[cls]:
            out.running[cls] = (data, image.version, image.security_version)
    for cls, version in current.items():
        if cls not in out.running:  # no image of the class listed: it runs one of its own
            data = build_image(version, 4096, seed=IMAGE_SEED)
            out.running[cls] = (data, version, 0)
            out.slot_size.setdefault(cls, 8192)
    return out


class Operator:
    """A person with ``tether rollout``: creates the scenario's rollouts, answers halts."""

    def __init__(self, platform: Platform, engine: Engine, ledger: Ledger, end: float) -> None:
        self.platform = platform
        self.engine = engine
        self.ledger = ledger
        self.end = end
        self.created: list[tuple[RolloutSpec, int]] = []
        self.decisions: list[tuple[float, int, str]] = []  # (when, rollout, what)
        self.failures: list[str] = []
        self._answered: set[int] = set()

    def begin(self, specs: list[RolloutSpec], start: float) -> None:
        for spec in specs:
            self.engine.at(start + spec.at, lambda s=spec: self._create(s))  # type: ignore[misc]

    def _create(self, spec: RolloutSpec, waited: float = 0.0) -> None:
        if spec.device_class == CART_CLASS and waited < MAX_WAIT:
            # Like a careful person, wait until every cart's firmware is known (its hello has
            # landed): a device the rollout records without its version cannot be sent back.
            made = sum(1 for b in self.ledger.books.values() if b.device_class == CART_CLASS)
            known = sum(1 for row in self.platform.rollout_store.fleet(CART_CLASS) if row[3])
            if known < made:
                self.engine.after(WAIT_STEP, lambda: self._create(spec, waited + WAIT_STEP))
                return
        windows = {site: Window.parse(text) for site, text in spec.windows.items()}
        try:
            planned = self.platform.rollouts.create(
                CohortSpec(spec.device_class, hw=tuple(spec.hw)),
                spec.version,
                spec.plan,
                windows,
                spec.seed,
            )
        except Exception as exc:  # a refusal is part of the story: the run reports it
            self.failures.append(f"{spec.device_class} {spec.version}: {exc}")
            self.ledger.count("rollouts.refused")
            return
        self.ledger.count("rollouts.created")
        rid = planned.rollout.id
        self.created.append((spec, rid))
        self.decisions.append((self.engine.now, rid, f"created, {planned.cohort} devices"))
        self.engine.after(HOUR, lambda: self._watch(spec, rid))

    def _watch(self, spec: RolloutSpec, rid: int) -> None:
        rollout = self.platform.rollout_store.get(rid)
        if rollout.state == HALTED and rid not in self._answered:
            self._answered.add(rid)
            self.ledger.count("rollouts.halted")
            self.engine.after(spec.on_halt.after, lambda: self._answer(spec, rid))
        if rollout.state in LIVE and self.engine.now < self.end:
            self.engine.after(HOUR, lambda: self._watch(spec, rid))

    def _answer(self, spec: RolloutSpec, rid: int) -> None:
        rollouts = self.platform.rollouts
        what = spec.on_halt.do
        if what == "wait":
            return
        if what == "release":
            said = rollouts.release(rid)
        else:
            # A halt on sick revisions alone sends those back; the others stay updated.
            halts = self.platform.rollout_store.get(rid).halts
            sick = sorted({h.hw for h in halts if h.hw}) if all(h.hw for h in halts) else []
            returning = what == "abort-return"
            back = rollouts.abort(rid, returning, sick if returning else ())
            said = f"aborted; {back} device(s) on the new version" + (
                f", sent back to the previous one{' (hw ' + ', '.join(sick) + ')' if sick else ''}"
                if returning
                else ""
            )
        self.decisions.append((self.engine.now, rid, said))
        self.ledger.count(f"rollouts.{what}")
        log.info("rollout %d: %s", rid, said)

    def halts(self) -> dict[int, list[tuple[str, str | None, str]]]:
        """Each rollout's halt reasons as the platform recorded them: (rule, hw, detail)."""
        store = self.platform.rollout_store
        return {
            rid: [(h.rule, h.hw, h.detail) for h in store.get(rid).halts] for _, rid in self.created
        }

    def states(self) -> dict[int, Counter[str]]:
        """Devices per update state, for each rollout created."""
        out: dict[int, Counter[str]] = {}
        for _, rid in self.created:
            out[rid] = Counter(d.state for d in self.platform.rollout_store.devices(rid))
        return out
