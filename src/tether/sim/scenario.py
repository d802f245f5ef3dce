"""Scenario files: the fleet, the time span and the networks of a simulated run.

A scenario is YAML; ``load_scenario`` validates it and names the file and the
key of every problem (``store-outage.yaml: networks.stores.outages.0.for: ...``).
Durations are written ``45s``, ``30m``, ``12h``, ``7d``, ``2w``; a speed as
``<simulated>/<real>`` (``1w/1m``: a week a minute) or ``max`` (as fast as the
machine goes). ``docs/simulator.md`` describes every key.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tether.errors import SettingsError
from tether.rollouts.plan import Window, parse_plan
from tether.sim.errors import ScenarioError
from tether.timeparse import parse_duration

SHIPPED = Path(__file__).parent / "scenarios"
Probability = float
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("write a duration such as 30m, 12h or 7d")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError("write a duration such as 30m, 12h or 7d")
    try:
        return parse_duration(value)
    except SettingsError as exc:
        raise ValueError(str(exc)) from None


def _hours(text: str) -> tuple[float, float]:
    """``07:00-22:00`` as (7.0, 22.0)."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"{text!r}: write opening hours as HH:MM-HH:MM, e.g. 07:00-22:00")
    out = []
    for part in parts:
        match = _CLOCK.fullmatch(part.strip())
        if not match or int(match[1]) > 24 or int(match[2]) > 59:
            raise ValueError(f"{part!r} is not a time of day (HH:MM)")
        out.append(int(match[1]) + int(match[2]) / 60)
    if not out[0] < out[1]:
        raise ValueError(f"{text!r}: opening must come before closing")
    return out[0], out[1]


def _opening(value: Any) -> tuple[float, float]:
    if isinstance(value, tuple):
        return value
    if not isinstance(value, str):
        raise ValueError("write opening hours as HH:MM-HH:MM, e.g. 07:00-22:00")
    return _hours(value)


def _span(value: Any) -> tuple[float, float]:
    if isinstance(value, tuple) and all(isinstance(v, float) for v in value):
        return value
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("write a span as [shortest, longest], e.g. [1m, 20m]")
    low, high = _seconds(value[0]), _seconds(value[1])
    if not 0 <= low <= high:
        raise ValueError("a span is [shortest, longest] with 0 <= shortest <= longest")
    return low, high


Duration = Annotated[float, BeforeValidator(_seconds)]
Hours = Annotated[tuple[float, float], BeforeValidator(_opening)]
Span = Annotated[tuple[float, float], BeforeValidator(_span)]


Charging = Literal["dock", "when-low", "when-dead"]
LinkName = Literal["wifi", "lte-m"]


def _default_charging() -> dict[Charging, float]:
    return {"dock": 0.35, "when-low": 0.5, "when-dead": 0.15}


def _both_links() -> list[LinkName]:
    return ["wifi", "lte-m"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _shares(value: dict[Any, float], what: str) -> dict[Any, float]:
    if not value or any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
        raise ValueError(f"{what}: give each choice a weight >= 0, and at least one above 0")
    return value


class BrushFleet(_Model):
    count: int = Field(ge=0, default=0)
    ring_slots: int = Field(ge=1, le=10_000, default=20)
    household_size: dict[int, float] = Field(default_factory=lambda: {1: 0.45, 2: 0.35, 3: 0.2})
    new: Probability = Field(ge=0, le=1, default=0.1)  # share of households unboxing in the run
    in_service: Span = (3 * 86400.0, 60 * 86400.0)  # the others' age at the start
    morning: Probability = Field(ge=0, le=1, default=0.92)
    evening: Probability = Field(ge=0, le=1, default=0.78)
    midday: Probability = Field(ge=0, le=1, default=0.1)  # mean; some people much more
    duration: Duration = 120.0
    charging: dict[Charging, float] = Field(default_factory=_default_charging)
    off_brand_heads: Probability = Field(ge=0, le=1, default=0.1)
    fw: str = "1.4.2"
    hw: str = "B"
    capabilities: list[str] = Field(
        default_factory=lambda: ["session-frames-v1", "device-event-frames-v1", "bond-frames-v1"]
    )

    @field_validator("household_size")
    @classmethod
    def _sizes(cls, value: dict[int, float]) -> dict[int, float]:
        if any(size < 1 or size > 8 for size in value):
            raise ValueError("household sizes are 1 to 8 people")
        return _shares(value, "household_size")

    @field_validator("charging")
    @classmethod
    def _charging(cls, value: dict[Charging, float]) -> dict[Charging, float]:
        return _shares(value, "charging")


class StoreSpec(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    carts: int = Field(ge=0)
    hours: Hours = (7.0, 22.0)
    customers_per_hour: float = Field(ge=0, default=20.0)
    hw: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,32}$")  # the fleet's if None


class CartFleet(_Model):
    stores: list[StoreSpec] = Field(default_factory=list)
    fw: str = "3.2.0"
    hw: str = "3"
    capabilities: list[str] = Field(
        default_factory=lambda: ["store-and-forward-v1", "identify-v1", "payment-token-v1"]
    )
    idle_health: Duration = Field(gt=0, default=300.0)  # health while no session is active

    @field_validator("stores")
    @classmethod
    def _unique(cls, value: list[StoreSpec]) -> list[StoreSpec]:
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError("store names must be unique")
        return value


class SiteSpec(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    tools: int = Field(ge=0)
    hours: Hours = (7.0, 17.0)


class ToolFleet(_Model):
    sites: list[SiteSpec] = Field(default_factory=list)


class Fleet(_Model):
    brushes: BrushFleet = BrushFleet()
    carts: CartFleet = CartFleet()
    tools: ToolFleet = ToolFleet()


class Phones(_Model):
    near: Probability = Field(ge=0, le=1, default=0.7)
    app_open: Probability = Field(ge=0, le=1, default=0.15)
    elsewhere: Probability = Field(ge=0, le=1, default=0.15)
    online: Probability = Field(ge=0, le=1, default=0.85)
    response_lost: Probability = Field(ge=0, le=1, default=0.03)
    forgets: Probability = Field(ge=0, le=1, default=0.05)
    cursor_lost: Probability = Field(ge=0, le=1, default=0.01)
    payload: dict[int, float] = Field(default_factory=lambda: {20: 0.7, 244: 0.3})
    notification_loss: Probability = Field(ge=0, le=0.5, default=0.01)
    drop_mid_drain: Probability = Field(ge=0, le=1, default=0.1)

    @field_validator("payload")
    @classmethod
    def _payloads(cls, value: dict[int, float]) -> dict[int, float]:
        if any(not 20 <= size <= 244 for size in value):
            raise ValueError(
                "BLE payloads are 20 (the default MTU) to 244 bytes (Data Length Extension)"
            )
        return _shares(value, "payload")


class Outage(_Model):
    store: str
    at: Duration  # after the start
    duration: Duration = Field(alias="for")
    links: list[LinkName] = Field(default_factory=_both_links)

    @field_validator("links")
    @classmethod
    def _some(cls, value: list[LinkName]) -> list[LinkName]:
        if not value:
            raise ValueError("name the links that go down: wifi, lte-m or both")
        return value


class StoreNetworks(_Model):
    wifi_flaps_per_hour: float = Field(ge=0, default=0.05)  # per cart
    outages: list[Outage] = Field(default_factory=list)


class SiteNetworks(_Model):
    drops_per_day: float = Field(ge=0, default=1.0)  # per tool
    drop_for: Span = (60.0, 1200.0)


class Networks(_Model):
    phones: Phones = Phones()
    stores: StoreNetworks = StoreNetworks()
    sites: SiteNetworks = SiteNetworks()
    ack_within: Duration = 30.0  # simulated seconds a live MQTT link may take to acknowledge


def _factor_span(value: Any) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("write a scale as [lowest, highest], e.g. [1.08, 1.25]")
    try:
        low, high = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise ValueError("a scale is two numbers, e.g. [1.08, 1.25]") from None
    if not 0 < low <= high or high > 10:
        raise ValueError("a scale is [lowest, highest] with 0 < lowest <= highest <= 10")
    if low == high == 1.0:
        raise ValueError("a scale of exactly 1 is a calibrated platform; give a factor off 1")
    return low, high


class Miscalibrated(_Model):
    """Carts of a store whose weight platforms read ``scale`` times the true weight."""

    store: str
    carts: int = Field(ge=1)
    scale: Annotated[tuple[float, float], BeforeValidator(_factor_span)] = (1.08, 1.25)


class Adversaries(_Model):
    """The attacks of a run (issue 5), at ``at`` after the start (default: 3/4 of the way)."""

    at: Duration | None = None
    forger: int = Field(ge=0, le=5000, default=0)  # records a decompiled app forges
    replayer: int = Field(ge=0, le=5000, default=0)  # genuine uploads captured and sent again
    phisher: int = Field(ge=0, le=500, default=0)  # brushes a phished account tries to re-pair
    miscalibrated: list[Miscalibrated] = Field(default_factory=list)

    @property
    def attacks(self) -> bool:
        return self.forger + self.replayer + self.phisher > 0


CART_CLASS, BRUSH_CLASS = "retail-cart", "oral-care-brush"
RolloutClass = Literal["retail-cart", "oral-care-brush"]
_VERSION = r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$"


def _crash_after(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError("write crash_after as {REVISION: hours after boot}, e.g. {B: 60h}")
    return {str(hw): _seconds(after) for hw, after in value.items()}


class ImageDefects(_Model):
    """What a simulated image declares going wrong (``tether.sim.ota.image.Defects``)."""

    crash_at_boot: list[str] = Field(default_factory=list)  # revisions it crashes at boot on
    # Per revision, how long after a boot it crashes (a duration, e.g. 60h).
    crash_after: Annotated[dict[str, float], BeforeValidator(_crash_after)] = Field(
        default_factory=dict
    )
    fault_rate: float = Field(gt=0, le=1000, default=1.0)  # a multiplier on the usual faults
    fault_hw: list[str] = Field(default_factory=list)  # revisions it applies to; [] is all


class ImageSpec(_Model):
    """A firmware image the platform's catalog holds at the start of the run."""

    device_class: RolloutClass = Field(alias="class")
    version: str = Field(pattern=_VERSION)
    hw: list[str] = Field(min_length=1)
    security_version: int = Field(ge=0, default=1)
    size: int = Field(ge=1024, le=4 * 1024 * 1024, default=16 * 1024)
    defects: ImageDefects = ImageDefects()


OnHalt = Literal["wait", "abort", "abort-return", "release"]


class HaltAnswer(_Model):
    """What the operator decides once a rollout halts, and how long they take to."""

    after: Duration = Field(ge=0, default=7200.0)
    do: OnHalt = "wait"


class RolloutSpec(_Model):
    """A rollout an operator creates during the run (``tether rollout create``)."""

    at: Duration = Field(ge=0)  # after the start
    device_class: RolloutClass = Field(alias="class")
    version: str = Field(pattern=_VERSION)
    hw: list[str] = Field(default_factory=list)
    plan: str = "canary:10:24h,1%:72h,10%:24h,25%:24h,100%:0h"
    windows: dict[str, str] = Field(default_factory=dict)  # site -> HH:MM-HH:MM[@ZONE]
    seed: int = 0
    on_halt: HaltAnswer = HaltAnswer()


class Rollouts(_Model):
    images: list[ImageSpec] = Field(default_factory=list)
    create: list[RolloutSpec] = Field(default_factory=list)
    # How long a device that crashed after its update was marked good stays dark until
    # someone power-cycles it (it crashes again at every boot until then).
    crash_dark: Span = (12 * 3600.0, 24 * 3600.0)
    transfer_drops: Probability = Field(ge=0, le=1, default=0.1)  # a download's link drops
    ble_payload: int = Field(ge=20, le=244, default=20)  # bytes a packet, phone to brush
    # How long the app may stream to a brush in one connection before the OS or the owner
    # ends it (a backgrounded app gets about a minute).
    ble_window: Span = (30.0, 90.0)

    @property
    def enabled(self) -> bool:
        return bool(self.images or self.create)


class Scenario(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    description: str = ""
    seed: int = 1
    tenant: str = Field(default="sim", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    start: str = "now"
    duration: Duration
    speed: float | None = 10080.0  # simulated seconds per real second; None: as fast as it goes
    utc_offset: float = 0.0  # seconds east of UTC of the fleet's homes, stores and sites
    fleet: Fleet = Fleet()
    networks: Networks = Networks()
    adversaries: Adversaries = Adversaries()
    rollouts: Rollouts = Rollouts()

    @field_validator("speed", mode="before")
    @classmethod
    def _speed(cls, value: Any) -> float | None:
        return parse_speed(value)

    @field_validator("utc_offset", mode="before")
    @classmethod
    def _offset(cls, value: Any) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) * 3600
        match = _OFFSET.fullmatch(str(value).strip())
        if not match:
            raise ValueError(f"{value!r}: write a UTC offset as +HH:MM or -HH:MM")
        sign = -1 if match[1] == "-" else 1
        return sign * (int(match[2]) * 3600 + int(match[3]) * 60)

    @field_validator("start")
    @classmethod
    def _start_form(cls, value: str) -> str:
        start_time(value, 0.0, time.time())  # raises ValueError with the accepted forms
        return value

    @model_validator(mode="after")
    def _stores_exist(self) -> Scenario:
        stores = {s.name for s in self.fleet.carts.stores}
        for i, outage in enumerate(self.networks.stores.outages):
            if outage.store not in stores:
                raise ValueError(
                    f"networks.stores.outages.{i}.store: no store named {outage.store!r} in "
                    f"fleet.carts.stores ({', '.join(sorted(stores)) or 'none'})"
                )
        if self.duration <= 0:
            raise ValueError("duration: a scenario lasts longer than nothing")
        self._adversaries_fit()
        self._rollouts_fit()
        return self

    def _rollouts_fit(self) -> None:
        spec = self.rollouts
        seen: set[tuple[str, str]] = set()
        for i, image in enumerate(spec.images):
            key = (image.device_class, image.version)
            if key in seen:
                raise ValueError(
                    f"rollouts.images.{i}: {image.device_class} {image.version} is listed twice"
                )
            seen.add(key)
        sites = {s.name for s in self.fleet.carts.stores}
        for i, r in enumerate(spec.create):
            where = f"rollouts.create.{i}"
            if (r.device_class, r.version) not in seen:
                raise ValueError(
                    f"{where}.version: no image {r.device_class} {r.version} in rollouts.images"
                )
            if not 0 <= r.at < self.duration:
                raise ValueError(f"{where}.at: a rollout is created during the run")
            try:
                parse_plan(r.plan)
            except Exception as exc:
                raise ValueError(f"{where}.plan: {exc}") from None
            for site, text in r.windows.items():
                if r.device_class == CART_CLASS and site not in sites:
                    raise ValueError(
                        f"{where}.windows: no store named {site!r} in fleet.carts.stores"
                    )
                try:
                    Window.parse(text)
                except Exception as exc:
                    raise ValueError(f"{where}.windows.{site}: {exc}") from None
            count = (
                sum(s.carts for s in self.fleet.carts.stores)
                if r.device_class == CART_CLASS
                else self.fleet.brushes.count
            )
            if count == 0:
                raise ValueError(f"{where}.class: the fleet has no {r.device_class} devices")

    def _adversaries_fit(self) -> None:
        adv = self.adversaries
        if adv.at is not None and not 0 <= adv.at < self.duration:
            raise ValueError(
                f"adversaries.at: the attacks come during the run, before its duration "
                f"({self.duration:g} s)"
            )
        if adv.attacks and self.fleet.brushes.count < 2:
            raise ValueError(
                "adversaries: the forger, replayer and phisher attack brushes through the HTTPS "
                "door; give fleet.brushes.count at least 2 (an attacker's household and a victim)"
            )
        carts = {s.name: s.carts for s in self.fleet.carts.stores}
        for i, bad in enumerate(adv.miscalibrated):
            if bad.store not in carts:
                raise ValueError(
                    f"adversaries.miscalibrated.{i}.store: no store named {bad.store!r} in "
                    f"fleet.carts.stores ({', '.join(sorted(carts)) or 'none'})"
                )
            if bad.carts > carts[bad.store]:
                raise ValueError(
                    f"adversaries.miscalibrated.{i}.carts: {bad.store} has only "
                    f"{carts[bad.store]} carts"
                )

    @property
    def attacks_at(self) -> float:
        """Seconds after the start when the attacks come."""
        at = self.adversaries.at
        return self.duration * 0.75 if at is None else at

    def begins(self, now: float) -> float:
        """The simulated start, for a run made at real time ``now``."""
        return start_time(self.start, self.utc_offset, now)

    @property
    def devices(self) -> int:
        fleet = self.fleet
        return (
            fleet.brushes.count
            + sum(s.carts for s in fleet.carts.stores)
            + sum(s.tools for s in fleet.tools.sites)
        )


def parse_speed(value: Any) -> float | None:
    """``1w/1m`` (simulated/real), a number of simulated seconds a second, or ``max``."""
    if value is None or value == "max":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("a speed is positive")
        return float(value)
    text = str(value)
    sim, sep, real = text.partition("/")
    if not sep:
        raise ValueError(f"{text!r}: write a speed as simulated/real (1w/1m), a number, or max")
    ratio = _seconds(sim.strip()) / _seconds(real.strip())
    if ratio <= 0:
        raise ValueError("a speed is positive")
    return ratio


def start_time(text: str, utc_offset: float, now: float) -> float:
    """``now``, ``next HH:MM`` (local time) or an ISO 8601 time that has not passed."""
    value = text.strip()
    if value == "now":
        return float(int(now))
    if value.startswith("next "):
        match = _CLOCK.fullmatch(value[5:].strip())
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise ValueError(f"{text!r}: write next HH:MM, e.g. next 09:00")
        local = now + utc_offset
        day = local // 86400 * 86400
        at = day + int(match[1]) * 3600 + int(match[2]) * 60
        if at <= local:
            at += 86400
        return at - utc_offset
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r}: start is now, next HH:MM, or an ISO 8601 time (2031-05-01T09:00:00+02:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone(dt.timedelta(seconds=utc_offset)))
    at = parsed.timestamp()
    if at < now - 60:
        raise ValueError(
            f"start {text!r} has passed: the fleet's certificates are dated by this machine's "
            "clock, so a run starts now or later"
        )
    return at


def shipped_scenarios() -> dict[str, Path]:
    """The scenarios that come with tether, by name."""
    return {p.stem: p for p in sorted(SHIPPED.glob("*.yaml"))}


def resolve(name_or_path: str) -> Path:
    """A scenario file by path, or one shipped with tether by name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = shipped_scenarios()
    if name_or_path in shipped:
        return shipped[name_or_path]
    raise ScenarioError(
        f"no scenario file {name_or_path!r}; give a path, or one of the shipped scenarios: "
        + ", ".join(shipped)
    )


def load_scenario(source: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read and validate a scenario file (a path, or a shipped scenario's name)."""
    path = resolve(str(source))
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping of keys (name, duration, fleet, ...)")
    return scenario_from(doc | (overrides or {}), str(path))


def scenario_from(doc: dict[str, Any], where: str = "scenario") -> Scenario:
    try:
        return Scenario.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"]) or "(top level)"
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{key}: {message}")
        raise ScenarioError(f"{where}: " + "; ".join(problems)) from None
