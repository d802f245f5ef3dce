"""Load mode: a big fleet from one process, and the figures a load run is judged by.

The shipped ``load`` scenario is 20,000 devices; :func:`scaled` makes it any
size with the same mix (the MQTT share, stores and sites of the same sizes, as
many of them as fit). :func:`figures` reads a finished run: devices, how many
were connected over MQTT at once, records made, records that reached a front
door and records the platform landed, per real second of the lived run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tether.sim.run import RunReport
from tether.sim.scenario import Scenario, load_scenario, scenario_from

LOAD = "load"
MQTT_CLASSES = ("retail-cart", "power-tool")


def _spread(total: int, sizes: list[int]) -> list[int]:
    """``total`` over places of at most these sizes, in order; the last one takes the rest."""
    out: list[int] = []
    left = total
    for size in sizes:
        if left <= 0:
            break
        out.append(min(size, left))
        left -= out[-1]
    if left > 0 and out:
        out[-1] += left
    return out


def scaled(devices: int, duration: float | None = None, base: Scenario | None = None) -> Scenario:
    """The load scenario with ``devices`` devices, in the same mix as the shipped 20,000."""
    if devices < 3:
        raise ValueError(f"load mode needs at least 3 devices, one of each class (got {devices})")
    scenario = base or load_scenario(LOAD)
    doc: dict[str, Any] = scenario.model_dump(by_alias=True)
    fleet = scenario.fleet
    carts_in = [s.carts for s in fleet.carts.stores]
    tools_in = [s.tools for s in fleet.tools.sites]
    total = fleet.brushes.count + sum(carts_in) + sum(tools_in)
    carts = max(1, round(devices * sum(carts_in) / total))
    tools = max(1, round(devices * sum(tools_in) / total))
    stores = [
        s.model_dump(by_alias=True) | {"carts": n}
        for s, n in zip(fleet.carts.stores, _spread(carts, carts_in), strict=False)
    ]
    sites = [
        s.model_dump(by_alias=True) | {"tools": n}
        for s, n in zip(fleet.tools.sites, _spread(tools, tools_in), strict=False)
    ]
    doc["fleet"]["brushes"]["count"] = devices - carts - tools
    doc["fleet"]["carts"]["stores"] = stores
    doc["fleet"]["tools"]["sites"] = sites
    kept = {s["name"] for s in stores}
    outages = doc["networks"]["stores"]["outages"]
    doc["networks"]["stores"]["outages"] = [o for o in outages if o["store"] in kept]
    if duration is not None:
        doc["duration"] = duration
    # Dumped values are in the model's own units: seconds, and the offset in hours again.
    doc["utc_offset"] = scenario.utc_offset / 3600
    return scenario_from(doc, f"{LOAD} scaled to {devices} devices")


@dataclass(frozen=True)
class LoadFigures:
    devices: int
    by_class: dict[str, int]
    mqtt_devices: int  # carts and tools: each its own MQTT connection
    mqtt_peak: int  # of those, connected at the same moment, at most
    simulated_seconds: float
    live_seconds: float  # real seconds from the world's start to the last record landed
    made: int  # records the devices made during the run
    reached: int  # records that reached a front door (the platform must hold each once)
    landed: int  # records the platform holds of those
    ok: bool

    @property
    def made_per_second(self) -> float:
        return self.made / self.live_seconds if self.live_seconds > 0 else 0.0

    @property
    def landed_per_second(self) -> float:
        return self.landed / self.live_seconds if self.live_seconds > 0 else 0.0

    @property
    def speedup(self) -> float:
        """Simulated seconds per real second."""
        return self.simulated_seconds / self.live_seconds if self.live_seconds > 0 else 0.0


def figures(report: RunReport, live_seconds: float) -> LoadFigures:
    """What a load run did, from its report; ``live_seconds`` as the caller timed it."""
    counts = report.counts
    classes = report.comparison.by_class()
    made = sum(counts[f"{cls}.records"] for cls in report.devices)
    reached = sum(int(v["expected"]) for v in classes.values())
    landed = sum(int(v["landed"]) for v in classes.values())
    return LoadFigures(
        devices=sum(report.devices.values()),
        by_class=dict(report.devices),
        mqtt_devices=sum(report.devices.get(cls, 0) for cls in MQTT_CLASSES),
        mqtt_peak=counts["mqtt.connected_peak"],
        simulated_seconds=report.end - report.start,
        live_seconds=live_seconds,
        made=made,
        reached=reached,
        landed=landed,
        ok=report.ok,
    )
