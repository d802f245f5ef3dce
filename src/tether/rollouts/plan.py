"""Cohorts and stage plans: who gets an image, in which order, and when.

The planner works on plain tuples so it stays fast for a million devices:
a :data:`Candidate` is ``(serial, tenant, class, hw, fw, site)``.

- :func:`select` keeps the devices the cohort names and drops those opted out.
- :func:`stratified_order` orders them so that every prefix spans the hardware
  revisions first and the sites within each revision second: revisions take
  turns, and inside a revision the sites take turns. Sites and devices are
  shuffled by a seeded generator, so a plan is the same for the same seed.
- :func:`stage_sizes` cuts that order into stages (a count for the canary,
  cumulative shares of the cohort after it).
- :class:`Window` is a site's maintenance window in its local time; a device is
  notified only inside its site's window.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, zip_longest
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tether.rollouts.model import CohortSpec, RolloutError, Stage

Candidate = tuple[str, str, str, str, str | None, str | None]
SERIAL: Final = 0
TENANT: Final = 1
CLASS: Final = 2
HW: Final = 3
FW: Final = 4
SITE: Final = 5

DEFAULT_PLAN = "canary:10:24h,1%:72h,10%:24h,25%:24h,100%:0h"

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    found = _DURATION.match(text.strip())
    if not found:
        raise RolloutError(f"{text!r} is not a duration; write 30m, 24h or 3d")
    return int(float(found.group(1)) * _UNIT[found.group(2)])


def parse_plan(text: str = DEFAULT_PLAN) -> list[Stage]:
    """Stages from ``canary:10:24h,1%:72h,...``: a labelled count, or a share, and a soak."""
    stages: list[Stage] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        fields = part.split(":")
        try:
            if len(fields) == 3:
                label, amount, soak = fields
                stages.append(Stage(float(int(amount)), False, parse_duration(soak), label))
            elif len(fields) == 2 and fields[0].endswith("%"):
                share = float(fields[0][:-1])
                if not 0 < share <= 100:
                    raise ValueError(share)
                stages.append(Stage(share, True, parse_duration(fields[1])))
            else:
                raise ValueError(part)
        except ValueError:
            raise RolloutError(
                f"stage {part!r} is not NAME:COUNT:SOAK or SHARE%:SOAK (for example {DEFAULT_PLAN})"
            ) from None
    if not stages:
        raise RolloutError(f"the plan has no stages (for example {DEFAULT_PLAN})")
    shares = [s.amount for s in stages if s.is_share]
    if shares != sorted(shares):
        raise RolloutError("the shares of a plan must grow from stage to stage")
    return stages


def stage_sizes(stages: Sequence[Stage], cohort: int) -> list[int]:
    """How many devices each stage adds; the last stage takes whatever is left."""
    sizes: list[int] = []
    reached = 0
    for i, stage in enumerate(stages):
        if i == len(stages) - 1:
            target = cohort
        elif stage.is_share:
            target = max(reached, min(cohort, -(-int(cohort * stage.amount) // 100)))
        else:
            target = min(cohort, reached + int(stage.amount))
        sizes.append(target - reached)
        reached = target
    return sizes


@dataclass(frozen=True)
class OptOuts:
    tenants: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()

    def excludes(self, c: Candidate) -> bool:
        return c[TENANT] in self.tenants or c[SITE] in self.sites or c[SERIAL] in self.devices


def _site_matcher(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def select(candidates: Iterable[Candidate], spec: CohortSpec, optouts: OptOuts) -> list[Candidate]:
    """The devices ``spec`` targets, without those opted out (by tenant, site or serial)."""
    hw, fws, devices = set(spec.hw), set(spec.from_fw), set(spec.devices)
    tenants = set(spec.tenants)
    sites = _site_matcher(spec.sites)
    out = []
    for c in candidates:
        if c[CLASS] != spec.device_class:
            continue
        if devices and c[SERIAL] not in devices:
            continue
        if hw and c[HW] not in hw:
            continue
        if fws and c[FW] not in fws:
            continue
        if tenants and c[TENANT] not in tenants:
            continue
        if sites is not None and (c[SITE] is None or not sites.match(c[SITE])):
            continue
        if optouts.excludes(c):
            continue
        out.append(c)
    return out


def stratified_order(cohort: Sequence[Candidate], seed: int) -> list[Candidate]:
    """The cohort in the order stages take it: revisions in turn, then sites in turn."""
    rng = random.Random(seed)
    by_hw: dict[str, dict[str, list[Candidate]]] = {}
    for c in sorted(cohort, key=_serial):
        by_hw.setdefault(c[HW], {}).setdefault(c[SITE] or "", []).append(c)
    lanes: list[list[Candidate]] = []
    for hw in sorted(by_hw):
        sites = by_hw[hw]
        names = sorted(sites)
        rng.shuffle(names)
        for name in names:
            rng.shuffle(sites[name])
        lanes.append(_interleave([sites[n] for n in names]))
    rng.shuffle(lanes)
    return _interleave(lanes)


def _serial(c: Candidate) -> str:
    return c[SERIAL]


_GAP: Candidate = ("", "", "", "", None, None)


def _interleave(lists: Sequence[list[Candidate]]) -> list[Candidate]:
    """Take one from each list in turn until all are empty."""
    if len(lists) == 1:
        return lists[0]
    return [c for c in chain.from_iterable(zip_longest(*lists, fillvalue=_GAP)) if c is not _GAP]


_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})(?:@(.+))?$")


@dataclass(frozen=True)
class Window:
    """A daily window in a site's local time; it may run past midnight (22:00-06:00)."""

    start: dt.time
    end: dt.time
    zone: str = "UTC"

    @classmethod
    def parse(cls, text: str) -> Window:
        found = _WINDOW.match(text.strip())
        if not found:
            raise RolloutError(
                f"window {text!r} is not HH:MM-HH:MM[@ZONE] (for example 22:00-06:00@Europe/Berlin)"
            )
        h1, m1, h2, m2, zone = found.groups()
        try:
            start, end = dt.time(int(h1), int(m1)), dt.time(int(h2), int(m2))
            ZoneInfo(zone or "UTC")
        except (ValueError, ZoneInfoNotFoundError):
            raise RolloutError(f"window {text!r}: no such time or time zone") from None
        return cls(start, end, zone or "UTC")

    def __str__(self) -> str:
        text = f"{self.start:%H:%M}-{self.end:%H:%M}"
        return text if self.zone == "UTC" else f"{text}@{self.zone}"

    def contains(self, when: float) -> bool:
        local = dt.datetime.fromtimestamp(when, ZoneInfo(self.zone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def parse_windows(items: Iterable[str]) -> dict[str, Window]:
    """``SITE=HH:MM-HH:MM[@ZONE]`` options into windows by site."""
    windows: dict[str, Window] = {}
    for item in items:
        site, sep, spec = item.partition("=")
        if not sep or not site.strip():
            raise RolloutError(f"--window {item!r} is not SITE=HH:MM-HH:MM[@ZONE]")
        windows[site.strip()] = Window.parse(spec)
    return windows


def may_notify(site: str | None, windows: dict[str, Window], when: float) -> bool:
    """Whether a device at ``site`` may be told of its update now (sites without one: always)."""
    window = windows.get(site or "")
    return window is None or window.contains(when)
