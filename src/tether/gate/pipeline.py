"""The gate's pipeline, the same for every front door.

For each record, in order: the device and its certificate (registry and
verifier), the transport its class allows, the signature (for signed classes),
decoding or frame expansion, the body schema, the bond (gateway uploads; a bond
record completes a pairing instead), clock correction, and last the identity
``(device, seq)`` (or the class's legacy key): the event log refuses a key it
already holds, which makes the record a duplicate. Records are judged on their
own; one bad record never fails the others in its batch. Rejected records go to
the dead-letter stream with their code and detail; a bad signature from a known
device is also a security event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import fastjsonschema
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tether.contract.codes import (
    ACCEPTED,
    BAD_SIGNATURE,
    DUPLICATE,
    MALFORMED,
    NOT_BONDED,
    REJECTED,
    SCHEMA_INVALID,
    UNKNOWN_TYPE,
)
from tether.contract.records import (
    Envelope,
    corrected_time,
    decode_legacy,
    decode_payload,
    split_record,
)
from tether.errors import RecordRejectedError
from tether.gate.devices import DeviceContext, DeviceDirectory
from tether.gate.submission import (
    GATEWAY,
    MQTT_LEGACY,
    TRANSPORT_OF_DOOR,
    AcceptedEvent,
    Submission,
)
from tether.stream.base import Stream, StreamEntry

log = logging.getLogger(__name__)
_ECDSA = ec.ECDSA(hashes.SHA256())


class Bonds(Protocol):
    """What the gate asks of the account store for gateway uploads."""

    def is_bonded(self, account_id: str, serial: str) -> bool: ...

    def complete_pairing(
        self, serial: str, challenge_hex: str, account_id: str, now: float
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    serial: str
    seq: int | None
    outcome: str
    code: str | None = None
    detail: str | None = None
    event: AcceptedEvent | None = None

    def as_result(self) -> dict[str, object]:
        return {
            "device": self.serial,
            "seq": self.seq,
            "outcome": self.outcome,
            "code": self.code,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    serial: str
    door: str
    account: str | None
    detail: str


def _verify(key: ec.EllipticCurvePublicKey, payload: bytes, sig: bytes) -> bool:
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        key.verify(der, payload, _ECDSA)
    except InvalidSignature:
        return False
    return True


class Gate:
    """Judges batches of submissions; appends accepted events and dead letters durably."""

    def __init__(
        self,
        devices: DeviceDirectory,
        events: Stream,
        dead_letter: Stream,
        bonds: Bonds | None = None,
        on_security_event: Callable[[SecurityEvent], None] | None = None,
    ) -> None:
        self.devices = devices
        self.events = events
        self.dead_letter = dead_letter
        self.bonds = bonds
        self.on_security_event = on_security_event

    def process(self, batch: Sequence[Submission]) -> list[Outcome]:
        """Judge every submission; return one outcome each, in order."""
        outcomes: list[Outcome | None] = [None] * len(batch)
        accepted: list[tuple[int, AcceptedEvent]] = []
        dead: list[StreamEntry] = []
        seen: dict[str, int] = {}
        for i, sub in enumerate(batch):
            try:
                event = self._judge(sub)
            except RecordRejectedError as exc:
                outcomes[i] = Outcome(sub.serial, exc.seq, REJECTED, exc.code, exc.detail)
                dead.append(self._dead_letter(sub, exc.code, exc.detail, exc.seq))
                continue
            if event.key in seen:  # the same record twice in one batch
                outcomes[i] = Outcome(sub.serial, event.seq, DUPLICATE, event=event)
                continue
            seen[event.key] = i
            accepted.append((i, event))
        if dead:
            self.dead_letter.append(dead)
        offsets = self.events.append([e.entry() for _, e in accepted], unique=True)
        for (i, event), offset in zip(accepted, offsets, strict=True):
            verdict = ACCEPTED if offset is not None else DUPLICATE
            outcomes[i] = Outcome(event.serial, event.seq, verdict, event=event)
        return [o for o in outcomes if o is not None]

    def reject_at_door(self, rejected: Sequence[tuple[Submission, Outcome]]) -> None:
        """Dead-letter records a front door refused before the gate could read them."""
        if rejected:
            self.dead_letter.append(
                [
                    self._dead_letter(sub, o.code or MALFORMED, o.detail or "", o.seq)
                    for sub, o in rejected
                ]
            )

    def _judge(self, sub: Submission) -> AcceptedEvent:
        ctx = self.devices.lookup(sub.serial, sub.arrival_ms)
        pack = ctx.runtime.pack
        if TRANSPORT_OF_DOOR[sub.door] not in pack.transports:
            raise RecordRejectedError(
                MALFORMED, f"class {pack.name} does not send over {TRANSPORT_OF_DOOR[sub.door]}"
            )
        payload, sig = split_record(sub.data, pack.signed)
        if sig is not None and not _verify(ctx.public_key, payload, sig):
            self._security(sub, "signature does not verify against the device's key")
            raise RecordRejectedError(BAD_SIGNATURE, "the signature does not verify")
        env = (
            decode_legacy(payload, sub.serial, ctx.runtime)
            if sub.door == MQTT_LEGACY
            else decode_payload(payload, sub.serial, ctx.runtime)
        )
        try:
            self._check_schema(ctx, env)
            if sub.door == GATEWAY:
                self._check_bond(sub, env)
        except RecordRejectedError as exc:
            raise RecordRejectedError(exc.code, exc.detail, env.seq) from None
        ts, corrected = corrected_time(env.ts_ms, sub.arrival_ms)
        return AcceptedEvent(
            tenant=ctx.tenant,
            serial=sub.serial,
            device_class=pack.name,
            dedupe_key=env.dedupe_key,
            seq=env.seq,
            type=env.type,
            v=env.v,
            device_ts=env.ts_ms,
            ts=ts,
            arrival=sub.arrival_ms,
            clock_corrected=corrected,
            door=sub.door,
            body=env.body,
        )

    def _check_bond(self, sub: Submission, env: Envelope) -> None:
        if self.bonds is None or sub.account is None:
            raise RecordRejectedError(NOT_BONDED, "gateway uploads need an account")
        if env.type == "bond":
            challenge = env.body.get("challenge")
            if not isinstance(challenge, str) or not self.bonds.complete_pairing(
                sub.serial, challenge, sub.account, sub.arrival_ms / 1000
            ):
                raise RecordRejectedError(
                    NOT_BONDED, "the bond record does not answer a challenge issued to this account"
                )
        elif not self.bonds.is_bonded(sub.account, sub.serial):
            raise RecordRejectedError(NOT_BONDED, f"this account holds no bond to {sub.serial}")

    @staticmethod
    def _check_schema(ctx: DeviceContext, env: Envelope) -> None:
        validate = ctx.runtime.validator(env.type, env.v)
        if validate is None:
            raise RecordRejectedError(
                UNKNOWN_TYPE, f"class {ctx.runtime.name} has no event type {env.type} v{env.v}"
            )
        try:
            validate(env.body)
        except fastjsonschema.JsonSchemaException as exc:
            raise RecordRejectedError(SCHEMA_INVALID, str(exc)) from None

    def _security(self, sub: Submission, detail: str) -> None:
        event = SecurityEvent(sub.serial, sub.door, sub.account, detail)
        log.warning(
            "security event: %s via %s (account %s): %s", sub.serial, sub.door, sub.account, detail
        )
        if self.on_security_event is not None:
            self.on_security_event(event)

    @staticmethod
    def _dead_letter(sub: Submission, code: str, detail: str, seq: int | None) -> StreamEntry:
        entry = sub.entry()
        headers = dict(entry.headers, code=code, detail=detail[:500])
        if seq is not None:
            headers["seq"] = str(seq)
        return StreamEntry(key=None, data=sub.data, headers=headers)
