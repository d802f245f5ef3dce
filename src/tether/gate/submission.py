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
from dataclasses import dataclass
from typing import Any

import msgspec

from tether.contract.jsonform import plain
from tether.stream.base import StreamEntry

GATEWAY = "gateway"  # HTTPS, account token, relayed by a phone
DIRECT = "direct"  # HTTPS, the device's own client certificate
MQTT = "mqtt"  # the contract topic tether/v1/{serial}/records
MQTT_LEGACY = "mqtt-legacy"  # a class's legacy topic
DOORS = (GATEWAY, DIRECT, MQTT, MQTT_LEGACY)
TRANSPORT_OF_DOOR = {GATEWAY: "gateway", DIRECT: "https-direct", MQTT: "mqtt", MQTT_LEGACY: "mqtt"}

_ENCODE = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
# Writes what _ENCODE writes for plain values (tether.contract.jsonform), ASCII aside:
# dict keys sorted, and an event's fields in the order they are declared (sorted).
_FAST = msgspec.json.Encoder(order="deterministic").encode


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


class AcceptedEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A record the gate accepted, with the fields of its JSON form.

    Not tracked by the cycle collector (a body never refers back to its event):
    the gate makes one per record, and each one tracked made collections run
    more often.
    """

    # In the JSON form's (sorted) order; made by keyword.
    arrival: int
    body: dict[str, Any]
    clock_corrected: bool
    dedupe_key: str
    device_class: str
    device_ts: int | None
    door: str
    seq: int | None
    serial: str
    tenant: str
    ts: int
    type: str
    v: int

    @property
    def key(self) -> str:
        return f"{self.serial}/{self.dedupe_key}"

    def fields(self) -> dict[str, Any]:
        """The event's fields by name, as ``dataclasses.asdict`` gave them (no copies)."""
        return {name: getattr(self, name) for name in self.__struct_fields__}

    def to_json(self, *, plain_values: bool = False) -> bytes:
        """The event's JSON form: compact, keys sorted, ASCII (``\\u`` escapes).

        The same bytes as ``json.dumps(event.fields(), separators=(",", ":"),
        sort_keys=True)``. msgspec writes them when every value is plain
        (:mod:`tether.contract.jsonform`) and the result is ASCII without DEL (a
        property test compares the two); ``json`` writes the rest (a frame layout
        may give ``seq`` or ``ts`` another type, a body may hold any float).
        ``plain_values=True`` says the caller knows the values are plain, as the
        gate does for what its decoders read: only the output is checked then.
        """
        if plain_values or (
            type(self.ts) is int
            and type(self.arrival) is int
            and type(self.v) is int
            and (self.seq is None or type(self.seq) is int)
            and (self.device_ts is None or type(self.device_ts) is int)
            and type(self.clock_corrected) is bool
            and plain(self.body)
        ):
            data = _FAST(self)
            if data.isascii() and data.find(b"\x7f") < 0:
                return data
        return _ENCODE(self.fields()).encode()

    def entry(self) -> StreamEntry:
        """The event-log entry of this event (its key and its JSON, no headers)."""
        return StreamEntry(key=self.key, data=self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> AcceptedEvent:
        return cls(**json.loads(data))
