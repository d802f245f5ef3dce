"""Delivery: a device the monitor notified gets its update job.

- A device whose class speaks MQTT gets the job on ``tether/v1/{serial}/commands``
  (QoS 1, through the bridge's session or a notice session) when it is notified.
- A phone-relayed device's job waits for its app: ``GET /v1/ota/jobs`` answers an
  account with the jobs of its bonded devices notified in a rollout that is not
  halted or aborted, and not yet installed; the app then fetches the image and streams it in chunks.

After ``abort --return-to-previous`` the devices on the new version get jobs for
the version each came from, the same ways (``send_back``); a device refuses one
whose security version is lower than the new version's, as any downgrade.

A job's id is the same for a (rollout, device) every time it is made, so a job
sent again or fetched twice is one job to the device; its signed time is fresh.
A device running the version the image was made a delta from gets the delta.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from tether.doors.mqtt.notices import Send
from tether.firmware.jobs import make_job
from tether.platform import Platform
from tether.rollouts.model import (
    ABORTED,
    COMPLETED,
    DOWNLOADING,
    NOTIFIED,
    RETURNING,
    RUNNING,
    VERIFYING,
    DeviceUpdate,
    Rollout,
)

log = logging.getLogger(__name__)
PENDING = (NOTIFIED, DOWNLOADING, VERIFYING)  # told, not yet installed: a job to (re)offer


def job_id(rollout: int, serial: str) -> str:
    return hashlib.sha256(f"{rollout}/{serial}".encode()).hexdigest()[:32]


class Delivery:
    """Makes jobs, publishes them to MQTT devices, and lists those waiting for apps."""

    def __init__(self, platform: Platform, send: Send | None = None) -> None:
        self.platform = platform
        self.send = send
        self.base_url = platform.settings.https.resolved_public_url()
        self._stranded: set[tuple[int, str]] = set()  # devices with no previous version to send

    def jobs(
        self, rollout: Rollout, serials: Sequence[str], version: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Each device's job for ``version`` (the rollout's), for the firmware it runs now."""
        p = self.platform
        artifact = p.artifact_catalog.get(rollout.device_class, version or rollout.version)
        key, now = p.firmware_key(), p.clock()
        states = p.device_state.many(serials)
        out = {}
        for serial in serials:
            state = states.get(serial)
            out[serial] = make_job(
                artifact,
                str(rollout.id),
                self.base_url,
                key,
                now,
                running=state.fw if state else None,
                job=job_id(rollout.id, serial),
            )
        return out

    def __call__(self, rollout: Rollout, serials: Sequence[str]) -> None:
        """The monitor's ``on_notify``: publish the jobs of devices reachable over MQTT."""
        if self.send is None:
            return
        pack = self.platform.catalog.get(rollout.device_class).pack
        if "mqtt" not in pack.transports:
            return  # their apps fetch the jobs
        for serial, job in self.jobs(rollout, serials).items():
            self.send(serial, "commands", job)
        log.info("rollout %d: sent %d update jobs", rollout.id, len(serials))

    def _by_previous(
        self, rollout: Rollout, devices: Sequence[DeviceUpdate]
    ) -> dict[str, list[str]]:
        """Devices to send back, by the version each came from (those the catalog holds)."""
        by_version: dict[str, list[str]] = {}
        known = {a.version for a in self.platform.artifact_catalog.list(rollout.device_class)}
        for d in devices:
            if d.from_fw in known:
                by_version.setdefault(d.from_fw, []).append(d.serial)
            elif (rollout.id, d.serial) not in self._stranded:
                self._stranded.add((rollout.id, d.serial))  # said once, not every pass
                why = (
                    "no version was known for it when the rollout was made (no hello yet)"
                    if d.from_fw is None
                    else f"its previous version {d.from_fw} is not in the catalog "
                    "(tether firmware add it)"
                )
                log.warning("rollout %d: cannot send %s back: %s", rollout.id, d.serial, why)
        return by_version

    def send_back(self, rollout: Rollout, devices: Sequence[DeviceUpdate]) -> list[str]:
        """The monitor's ``on_return``: jobs for the version each device came from.

        Returns the devices a job exists for (published now to MQTT devices,
        fetched by apps for the others); a device whose previous version is not
        in the catalog stays where it is, and is logged once.
        """
        by_version = self._by_previous(rollout, devices)
        pack = self.platform.catalog.get(rollout.device_class).pack
        if "mqtt" in pack.transports and self.send is not None:
            for version, serials in by_version.items():
                for serial, job in self.jobs(rollout, serials, version).items():
                    self.send(serial, "commands", job)
        return [serial for serials in by_version.values() for serial in serials]

    def for_account(self, account_id: str) -> list[dict[str, Any]]:
        """Jobs waiting for this account's app: its bonded devices, notified and not installed."""
        p = self.platform
        serials = [bond.serial for bond in p.accounts.bonds_of(account_id)]
        targets = p.rollout_store.targets(serials)
        waiting: dict[int, list[str]] = {}
        for serial, target in targets.items():
            if target.state in PENDING or target.state == RETURNING:
                waiting.setdefault(target.rollout_id, []).append(serial)
        out = []
        for rid, devices in sorted(waiting.items()):
            rollout = p.rollout_store.get(rid)
            if rollout.state in (RUNNING, COMPLETED):
                jobs = self.jobs(rollout, devices)
            elif rollout.state == ABORTED and rollout.return_to_previous:
                parts = list(p.rollout_store.updates(rid, devices).values())
                jobs = {}
                for version, serials in self._by_previous(rollout, parts).items():
                    jobs.update(self.jobs(rollout, serials, version))
            else:
                continue  # a halt holds what was not installed yet; an abort ends it
            out += [{"serial": serial, "job": job} for serial, job in jobs.items()]
        return out
