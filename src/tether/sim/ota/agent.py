"""A simulated device's update jobs: read the job, take the bytes, install, report.

``UpdateAgent`` sits between a device model (a cart, a brush) and its
``OtaDevice``. It reads a job as the device would (``tether.firmware.jobs``:
the platform's signed time must verify against the device's firmware trust
anchors), offers the job's manifest to the device, writes what arrives into
the inactive slot through the chunk receiver (a cart writes the pieces it
downloaded over HTTPS; a brush hears chunks from its phone), and tells the
device model what to report: ``ota-status`` records of the contract (section
10) through ``report``. Booting, and the ``boot`` record, stay with the device
model, which knows when it reboots.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tether.contract.chunks import MAX_PAYLOAD, chunk_count, chunk_span, encode_chunk
from tether.errors import ManifestRefusedError
from tether.firmware.jobs import Job, read_job
from tether.firmware.verify import anchor_name
from tether.sim.ota.device import Accepted, OtaDevice
from tether.sim.ota.install import Committed, Refused
from tether.sim.ota.receiver import Ack

STATUS = "ota-status"
Report = Callable[[str, dict[str, Any]], None]  # (record type, body)


@dataclass
class Transfer:
    """A job under way: the bytes still to take, at ``payload`` bytes a chunk."""

    job: Job
    envelope: bytes
    version: str
    payload: int = MAX_PAYLOAD

    @property
    def size(self) -> int:
        return self.job.size


class UpdateAgent:
    def __init__(
        self,
        device: OtaDevice,
        anchors: Iterable[ec.EllipticCurvePublicKey],
        report: Report,
    ) -> None:
        self.device = device
        self.anchors = list(anchors)
        self.report = report
        self.transfer: Transfer | None = None
        # Jobs finished (installed, or refused for good), by id and image: a rollout's job
        # for a device keeps its id when an abort sends the device back to its old version.
        self.done: set[tuple[str, str]] = set()
        self.failures = 0

    @property
    def trust_anchors(self) -> list[str]:
        """The names a hello lists (``tether.firmware.verify.anchor_name``)."""
        return sorted(anchor_name(key) for key in self.anchors)

    def status(self, rollout: str, version: str, state: str, reason: str | None = None) -> None:
        body: dict[str, Any] = {"rollout": rollout, "version": version, "state": state}
        if reason is not None:
            body["reason"] = reason[:200]
        self.report(STATUS, body)

    def read(self, message: dict[str, Any]) -> Job | None:
        """The job in ``message``; a job that does not verify is reported failed and dropped."""
        try:
            job = read_job(message, self.anchors)
        except ManifestRefusedError as exc:
            rollout = message.get("rollout")
            if isinstance(rollout, str | int) and not isinstance(rollout, bool):
                version = _version(message.get("manifest"))
                self.status(str(rollout), version, "failed", f"{exc.reason}: {exc.detail}")
            return None
        return job

    def start(self, job: Job) -> Transfer | None:
        """Offer the job to the device: the transfer to carry on, or None (done or refused)."""
        if key(job) in self.done:
            return None
        version = job.manifest.manifest().version
        if self.device.version == version:
            self.done.add(key(job))
            return None
        envelope = job.manifest.envelope()
        answer = self.device.offer(envelope, job.time, MAX_PAYLOAD)
        if isinstance(answer, Refused):
            if answer.reason in ("busy", "off"):
                return None  # not now; the job comes again or the device asks again
            self.done.add(key(job))
            self.status(job.rollout, version, "failed", f"{answer.reason}: {answer.detail}")
            return None
        self.transfer = Transfer(job, envelope, version)
        self.status(job.rollout, version, "downloading")
        if isinstance(answer, Committed):
            return self.transfer  # every byte was already in: installed by the offer
        assert isinstance(answer, Accepted)
        return self.transfer

    def next_range(self) -> tuple[int, int] | None:
        """The bytes to fetch next (``start``, ``stop``), from the receiver's persisted cursor."""
        t = self.transfer
        cursor = self.device.receiver.cursor()
        if t is None or cursor is None:
            return None
        first = cursor.cursor + 1
        if first >= chunk_count(t.size, t.payload):
            return None
        return first * t.payload, t.size

    def feed(self, start: int, data: bytes) -> str:
        """Bytes from ``start`` into the receiver: ``more``, ``installed`` or ``failed``."""
        t = self.transfer
        assert t is not None
        index = start // t.payload
        end = start + len(data)
        while True:
            lo, hi = chunk_span(index, t.size, t.payload)
            if hi > end or lo >= t.size:
                break
            if hi == t.size:
                self.status(t.job.rollout, t.version, "verifying")
            reply = self.device.receive(
                encode_chunk(index, data[lo - start : hi - start], min_payload=1)
            )
            if not isinstance(reply, Ack):
                return "more"  # the cursor says where to go on
            if reply.complete:
                return self._finished(t)
            index += 1
        return "more"

    def finished(self) -> str:
        """After an offer that found every byte in (Committed), or to settle the outcome."""
        t = self.transfer
        assert t is not None
        return self._finished(t)

    def _finished(self, t: Transfer) -> str:
        self.transfer = None
        self.done.add(key(t.job))
        meta = self.device.flash.meta
        events = self.device.events
        if meta.pending is not None or (self.device.version == t.version):
            self.status(t.job.rollout, t.version, "installed")
            return "installed"
        why = events[-1].detail if events and events[-1].kind == "refused" else "not installed"
        self.status(t.job.rollout, t.version, "failed", why)
        return "failed"

    def abandon(self, reason: str) -> None:
        """The transfer cannot go on (the image is gone, the door refuses): report it failed."""
        t = self.transfer
        if t is None:
            return
        self.transfer = None
        self.failures += 1
        self.status(t.job.rollout, t.version, "failed", reason)


def key(job: Job) -> tuple[str, str]:
    """What makes a job one job to the device: its id and the image's hash."""
    return job.job, job.manifest.manifest().sha256


def _version(manifest: object) -> str:
    """The version a (possibly bad) job's manifest names, for the failure report."""
    if not isinstance(manifest, dict):
        return "unknown"
    try:
        body = json.loads(base64.b64decode(str(manifest.get("manifest", ""))))
    except ValueError:
        return "unknown"
    return str(body.get("version", "unknown"))[:32] if isinstance(body, dict) else "unknown"
