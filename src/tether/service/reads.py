"""Read routes for what landed: a device's events, gaps and rejects, the fleet (operator token)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Query

from tether.platform import Platform
from tether.projections.gaps import find_gaps
from tether.service.fleet import FleetView


def device_gaps(platform: Platform, serial: str) -> dict[str, Any]:
    state = platform.device_state.get(serial)
    gaps = find_gaps(platform.telemetry.seqs(serial), state.lowest_seq_held if state else None)
    return {
        "serial": serial,
        "lost": gaps.lost,
        "pending": gaps.pending,
        "lost_count": gaps.lost_count,
        "pending_count": gaps.pending_count,
    }


def read_routes(platform: Platform, operator: Any) -> APIRouter:
    router = APIRouter(dependencies=[Depends(operator)])
    fleet = FleetView(platform, gaps_every=0)

    @router.get("/v1/devices/{serial}/events")
    def events(serial: str, limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
        platform.registry.get_device(serial)
        return {"events": [asdict(e) for e in platform.telemetry.latest(serial, limit)]}

    @router.get("/v1/devices/{serial}/gaps")
    def gaps(serial: str) -> dict[str, Any]:
        platform.registry.get_device(serial)
        return device_gaps(platform, serial)

    @router.get("/v1/devices/{serial}/rejects")
    def rejects(serial: str, limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
        platform.registry.get_device(serial)
        return {
            "rejects": [asdict(r) for r in platform.rejects.recent(serial, limit)],
            "counts": [asdict(c) for c in platform.rejects.counts(serial)],
        }

    @router.get("/v1/rejects/counts")
    def reject_counts() -> dict[str, Any]:
        return {"counts": [asdict(c) for c in platform.rejects.counts()]}

    @router.get("/v1/fleet")
    def fleet_summary() -> dict[str, Any]:
        """Presence per class and site, outcomes and their rates, gaps, the latest rejects."""
        return fleet.snapshot().to_json()

    return router
