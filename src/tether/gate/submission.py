"""What flows into and out of the gate, and its form in the streams.

A :class:`Submission` is a record as a front door received it: the serial the
door authenticated or the upload named, the raw bytes, the door, the arrival
time and, for gateway uploads, the account. It is stored as such in the raw
stream, so a replay judges exactly what arrived. An :class:`AcceptedEvent` is a
record the gate accepted, in the contract's JSON form; the event log holds it
under the key ``serial/dedupe_key``, which makes a second copy impossible.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from tether.stream.base import StreamEntry

GATEWAY = "gateway"  # HTTPS, account token, relayed by a phone
DIRECT = "direct"  # HTTPS, the device's own client certificate
MQTT = "mqtt"  # the contract topic tether/v1/{serial}/records
MQTT_LEGACY = "mqtt-legacy"  # a class's legacy topic
DOORS = (GATEWAY, DIRECT, MQTT, MQTT_LEGACY)
TRANSPORT_OF_DOOR = {GATEWAY: "gateway", DIRECT: "https-direct", MQTT: "mqtt", MQTT_LEGACY: "mqtt"}


@dataclass(frozen=True, slots=True)
class Submission:
    serial: str
    data: bytes
    door: str
    arrival_ms: int
    account: str | None = None

    def entry(self) -> StreamEntry:
        headers = {"serial": self.serial, "door": self.door, "arrival": str(self.arrival_ms)}
        if self.account is not None:
            headers["account"] = self.account
        return StreamEntry(key=None, data=self.data, headers=headers)

    @classmethod
    def from_entry(cls, entry: StreamEntry) -> Submission:
        h = entry.headers
        return cls(h["serial"], entry.data, h["door"], int(h["arrival"]), h.get("account"))


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    tenant: str
    serial: str
    device_class: str
    dedupe_key: str
    seq: int | None
    type: str
    v: int
    device_ts: int | None
    ts: int
    arrival: int
    clock_corrected: bool
    door: str
    body: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.serial}/{self.dedupe_key}"

    def entry(self) -> StreamEntry:
        data = json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()
        return StreamEntry(
            key=self.key, data=data, headers={"serial": self.serial, "type": self.type}
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AcceptedEvent:
        return cls(**json.loads(data))
