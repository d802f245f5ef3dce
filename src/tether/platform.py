"""The platform's parts, wired from one settings object.

``Platform.open(settings)`` opens the engines the settings name and builds the
services on top of them. Commands, the HTTP service and tests all start here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tether.accounts import AccountStore, SqlAccounts
from tether.classes.catalog import ClassCatalog, load_catalog
from tether.devices.secure_element import SecureElementStore
from tether.doors.backlog import Backlog
from tether.errors import ConflictError, NotFoundError
from tether.firmware.artifacts import Artifacts
from tether.firmware.blobs import BlobStore, open_blob_store
from tether.firmware.catalog import ArtifactCatalog
from tether.gate.devices import DeviceDirectory
from tether.gate.pipeline import Gate
from tether.gate.ratelimit import RecordBudget
from tether.gate.worker import GATE_GROUP
from tether.identity.ca import Authority
from tether.identity.provisioning import Provisioner
from tether.identity.verifier import CertificateVerifier
from tether.keys import KeyCustody, SigningKey, open_custody
from tether.projections.projector import CONSUMER as PROJECTOR
from tether.projections.projector import Projector
from tether.projections.rejects import RejectLog
from tether.projections.state import DeviceStateStore
from tether.registry.base import DeviceRecord, DeviceRegistry
from tether.registry.sql import SqlRegistry
from tether.rollouts.monitor import RolloutMonitor
from tether.rollouts.service import Rollouts
from tether.rollouts.store import RolloutStore
from tether.rollouts.tracker import RolloutTracker
from tether.settings import Settings
from tether.store.telemetry.base import TelemetryStore, open_telemetry_store
from tether.stream.base import Stream, open_stream
from tether.stream.group import WorkGroup, open_group

FIRMWARE_KEY_LABEL = "platform/firmware-signing"


@dataclass
class Platform:
    settings: Settings
    registry: DeviceRegistry
    custody: KeyCustody
    clock: Callable[[], float] = field(default=time.time)
    # What dates certificates and revocation lists. TLS stacks outside tether
    # (Mosquitto, HTTPS clients) judge those by the machine's clock, so a platform
    # on a simulated clock keeps this one on the machine's (None: ``clock``).
    pki_clock: Callable[[], float] | None = None
    _streams: dict[str, Stream] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        pki_clock: Callable[[], float] | None = None,
    ) -> Platform:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        registry = SqlRegistry(settings.resolved_entity_url())
        custody = open_custody(settings.resolved_keys_url())
        return cls(settings, registry, custody, clock, pki_clock)

    @cached_property
    def authority(self) -> Authority:
        return Authority(
            self.registry, self.custody, self.settings.identity, self.pki_clock or self.clock
        )

    @cached_property
    def provisioner(self) -> Provisioner:
        return Provisioner(self.authority, self.registry, self.clock)

    @cached_property
    def verifier(self) -> CertificateVerifier:
        return CertificateVerifier(
            self.registry, self.clock, self.settings.identity.revocation_poll_seconds
        )

    @cached_property
    def catalog(self) -> ClassCatalog:
        return load_catalog(self.settings.class_packs)

    def stream(self, name: str) -> Stream:
        """One of the platform's streams: ``raw``, ``events`` or ``dead-letter``."""
        if name not in self._streams:
            self._streams[name] = open_stream(self.settings.resolved_stream_url(), name)
        return self._streams[name]

    @cached_property
    def backlog(self) -> Backlog:
        """How far the telemetry store is behind the event log, for the doors' backpressure."""
        return Backlog(self.stream("events"), PROJECTOR, self.settings.ingest.max_backlog)

    @cached_property
    def gate_group(self) -> WorkGroup:
        """This process's place in the gate workers' group on the raw stream."""
        return open_group(
            self.settings.resolved_stream_url(),
            "raw",
            GATE_GROUP,
            lease_seconds=self.settings.ingest.lease_seconds,
        )

    @cached_property
    def devices(self) -> DeviceDirectory:
        return DeviceDirectory(self.registry, self.verifier, self.catalog, self.clock)

    @cached_property
    def gate(self) -> Gate:
        """The gate of the front doors, holding each device to its record budget."""
        ingest = self.settings.ingest
        return self._gate(RecordBudget(ingest.device_records_per_second, ingest.device_burst))

    @cached_property
    def replay_gate(self) -> Gate:
        """The gate for replays: the same checks, without budgets (the records are in hand)."""
        return self._gate(None)

    def _gate(self, budget: RecordBudget | None) -> Gate:
        events, dead_letter = self.stream("events"), self.stream("dead-letter")
        return Gate(self.devices, events, dead_letter, bonds=self.accounts, budget=budget)

    @cached_property
    def device_state(self) -> DeviceStateStore:
        return DeviceStateStore(self.settings.resolved_entity_url())

    @cached_property
    def telemetry(self) -> TelemetryStore:
        return open_telemetry_store(self.settings.resolved_telemetry_url())

    @cached_property
    def projector(self) -> Projector:
        return Projector(self.stream("events"), self.telemetry, self.device_state, self.catalog)

    @cached_property
    def rejects(self) -> RejectLog:
        return RejectLog(
            self.settings.resolved_entity_url(),
            self.stream("dead-letter"),
            self.registry,
            self.device_state,
        )

    def capabilities_in_use(self, serials: Iterable[str]) -> dict[str, list[str]]:
        """For each device, the capabilities both it and the platform will use."""
        states = self.device_state.many(serials)
        return {serial: states[serial].agreed if serial in states else [] for serial in serials}

    @cached_property
    def accounts(self) -> AccountStore:
        """Accounts, tokens, bonds and pairing, in the entity store beside the registry."""
        poll = min(1.0, self.settings.identity.revocation_poll_seconds)
        return SqlAccounts(self.settings.resolved_entity_url(), self.registry, poll)

    @cached_property
    def secure_elements(self) -> SecureElementStore:
        return SecureElementStore.from_url(self.settings.resolved_secure_elements_url())

    @cached_property
    def firmware_custody(self) -> KeyCustody:
        return open_custody(self.settings.resolved_firmware_keys_url())

    def revoke(self, serial: str, reason: str) -> DeviceRecord:
        """Revoke a device; this process refuses it at once, others within the poll."""
        return self.registry.revoke_device(serial, reason, self.clock())

    def renew(self, csr: bytes, proof: bytes | None = None) -> x509.Certificate:
        """Renew a device's certificate; the superseded one is refused from now on."""
        return self.provisioner.renew(csr, proof)

    def firmware_key(self, create: bool = False) -> SigningKey:
        """The firmware-signing key, held apart from the CA keys."""
        custody = self.firmware_custody
        if custody.exists(FIRMWARE_KEY_LABEL):
            if create:
                raise ConflictError("the firmware-signing key already exists")
            return custody.get(FIRMWARE_KEY_LABEL)
        if not create:
            raise NotFoundError(
                "there is no firmware-signing key yet; create it with: tether firmware key-init"
            )
        return custody.create(FIRMWARE_KEY_LABEL)

    def firmware_public_key(self) -> ec.EllipticCurvePublicKey:
        return self.firmware_key().public_key()

    @cached_property
    def blobs(self) -> BlobStore:
        """The blob store: firmware images and patches by their SHA-256."""
        return open_blob_store(self.settings.resolved_blob_url())

    @cached_property
    def artifact_catalog(self) -> ArtifactCatalog:
        return ArtifactCatalog(self.settings.resolved_entity_url())

    @cached_property
    def artifacts(self) -> Artifacts:
        """Firmware artifacts: images in the blob store, signed manifests in the catalog."""
        return Artifacts(
            self.artifact_catalog, self.blobs, self.firmware_key, self.catalog.names(), self.clock
        )

    @cached_property
    def rollout_store(self) -> RolloutStore:
        return RolloutStore(self.settings.resolved_entity_url())

    @cached_property
    def rollouts(self) -> Rollouts:
        """Staged rollouts: cohorts, plans, the trust check, release and abort."""
        return Rollouts(self.rollout_store, self.registry, self.artifact_catalog, self.clock)

    @cached_property
    def rollout_tracker(self) -> RolloutTracker:
        """Devices' update states from the event log (status reports, boots, faults)."""
        return RolloutTracker(self.stream("events"), self.rollout_store)

    @cached_property
    def rollout_monitor(self) -> RolloutMonitor:
        """Halt rules, notifications in maintenance windows, and stages moving on."""
        return RolloutMonitor(self.rollout_store, self.clock)

    def close(self) -> None:
        self.registry.close()
        self.custody.close()
        if "firmware_custody" in self.__dict__:
            self.firmware_custody.close()
        if "secure_elements" in self.__dict__:
            self.secure_elements.close()
        if "accounts" in self.__dict__:
            self.accounts.close()
        if "gate_group" in self.__dict__:
            self.gate_group.close()
        for stream in self._streams.values():
            stream.close()
        for name in (
            "device_state",
            "telemetry",
            "rejects",
            "artifact_catalog",
            "blobs",
            "rollout_store",
        ):
            if name in self.__dict__:
                getattr(self, name).close()
