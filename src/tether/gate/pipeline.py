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
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import fastjsonschema
import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tether.contract.codes import (
    ACCEPTED,
    BAD_SIGNATURE,
    DUPLICATE,
    MALFORMED,
    NOT_BONDED,
    RATE_LIMITED,
    REJECTED,
    SCHEMA_INVALID,
    UNKNOWN_TYPE,
)
from tether.contract.records import (
    corrected_time,
    decode_legacy,
    read_payload,
    split_record,
)
from tether.errors import RecordRejectedError
from tether.gate.devices import DeviceContext, DeviceDirectory
from tether.gate.ratelimit import RecordBudget
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
# An event-log entry carries no headers: nothing reads them (the key and the JSON
# say it all), and an entry without them costs the stream less.
_NO_HEADERS: dict[str, str] = {}


class Bonds(Protocol):
    """What the gate asks of the account store for gateway uploads."""

    def is_bonded(self, account_id: str, serial: str) -> bool: ...

    def complete_pairing(
        self, serial: str, challenge_hex: str, account_id: str, now: float
    ) -> bool: ...


class Outcome(msgspec.Struct, frozen=True, gc=False):
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


def _der_parts(r_pad: int, s_pad: int) -> tuple[bytes, bytes]:
    """What goes before ``r`` and between ``r`` and ``s`` when both are 32 bytes long."""
    r_len, s_len = 32 + r_pad, 32 + s_pad
    return (
        bytes([0x30, r_len + s_len + 4, 2, r_len]) + b"\0" * r_pad,
        bytes([2, s_len]) + b"\0" * s_pad,
    )


# By (r's high bit, s's high bit): a high bit set takes a zero byte in front.
_DER_PARTS = [_der_parts(r_pad, s_pad) for r_pad in (0, 1) for s_pad in (0, 1)]


def _der(sig: bytes) -> bytes:
    """The DER form of a raw ``r || s`` signature, as OpenSSL takes it.

    The same bytes as ``encode_dss_signature`` of the two integers, without the
    round trip through Python integers. Unless ``r`` or ``s`` starts with a zero
    byte (one signature in 128), only the high bits decide the framing.
    """
    r0, s0 = sig[0], sig[32]
    if r0 and s0:
        head, middle = _DER_PARTS[(r0 >> 6 & 2) | s0 >> 7]
        return b"".join((head, sig[:32], middle, sig[32:]))
    r = sig[:32].lstrip(b"\0") or b"\0"
    s = sig[32:].lstrip(b"\0") or b"\0"
    if r[0] & 0x80:
        r = b"\0" + r
    if s[0] & 0x80:
        s = b"\0" + s
    return b"0%c\x02%c%b\x02%c%b" % (len(r) + len(s) + 4, len(r), r, len(s), s)


def _verify(key: ec.EllipticCurvePublicKey, payload: bytes, der: bytes) -> bool:
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
        budget: RecordBudget | None = None,
    ) -> None:
        self.devices = devices
        self.events = events
        self.dead_letter = dead_letter
        self.bonds = bonds
        self.on_security_event = on_security_event
        # Each device's record budget; None judges without one (replay).
        self.budget = budget
        self._duplicates = 0  # records answered duplicate, for the fleet view
        self._tally = threading.Lock()

    @property
    def duplicates(self) -> int:
        """Records this gate answered ``duplicate`` since it was made."""
        return self._duplicates

    def process(self, batch: Sequence[Submission]) -> list[Outcome]:
        """Judge every submission; return one outcome each, in order.

        Three passes over the batch, each record going through the same checks in
        the same order as ever: first who sent it (device, transport, the split of
        payload and signature), then every signature, back to back, so that
        OpenSSL's tables stay in the processor's cache, then what each authentic
        record says (decoding, schema, bond, clock, budget). The accepted events
        are appended in one call, the dead letters in another, in the batch's order.
        """
        outcomes: list[Outcome | None] = [None] * len(batch)
        dead: list[tuple[int, StreamEntry]] = []
        # What pass 1 opened, in parallel lists (no object per record to collect).
        opened_at: list[int] = []
        contexts: list[DeviceContext] = []
        payloads: list[bytes] = []
        signatures: list[bytes | None] = []  # DER; None for an unsigned class
        lookup = self.devices.lookup
        for i, sub in enumerate(batch):
            try:
                ctx = lookup(sub.serial, sub.arrival_ms)
                pack = ctx.runtime.pack
                if TRANSPORT_OF_DOOR[sub.door] not in pack.transports:
                    raise RecordRejectedError(
                        MALFORMED,
                        f"class {pack.name} does not send over {TRANSPORT_OF_DOOR[sub.door]}",
                    )
                payload, sig = split_record(sub.data, pack.signed)
            except RecordRejectedError as exc:
                self._refuse(outcomes, dead, i, sub, exc)
                continue
            opened_at.append(i)
            contexts.append(ctx)
            payloads.append(payload)
            signatures.append(None if sig is None else _der(sig))
        authentic: list[int] = []  # positions in the opened lists
        for k, der in enumerate(signatures):
            if der is not None and not _verify(contexts[k].public_key, payloads[k], der):
                sub = batch[opened_at[k]]
                self._security(sub, "signature does not verify against the device's key")
                forged = RecordRejectedError(BAD_SIGNATURE, "the signature does not verify")
                self._refuse(outcomes, dead, opened_at[k], sub, forged)
                continue
            authentic.append(k)
        accepted_at: list[int] = []
        events: list[AcceptedEvent] = []
        entries: list[StreamEntry] = []
        seen: set[str] = set()
        repeated = 0  # records twice in this batch
        read = self._read
        budget = self.budget
        for k in authentic:
            i = opened_at[k]
            sub = batch[i]
            try:
                event, plain = read(sub, contexts[k], payloads[k])
                if budget is not None and not budget.allow(sub.serial, sub.arrival_ms):
                    self._over_budget(sub, event)
            except RecordRejectedError as exc:
                self._refuse(outcomes, dead, i, sub, exc)
                continue
            key = f"{event.serial}/{event.dedupe_key}"
            if key in seen:  # the same record twice in one batch
                outcomes[i] = Outcome(sub.serial, event.seq, DUPLICATE, event=event)
                repeated += 1
                continue
            seen.add(key)
            accepted_at.append(i)
            events.append(event)
            entries.append(StreamEntry(key, event.to_json(plain_values=plain), _NO_HEADERS))
        if dead:
            dead.sort(key=lambda d: d[0])
            self.dead_letter.append([entry for _, entry in dead])
        offsets = self.events.append(entries, unique=True)
        for i, event, offset in zip(accepted_at, events, offsets, strict=True):
            verdict = ACCEPTED if offset is not None else DUPLICATE
            outcomes[i] = Outcome(event.serial, event.seq, verdict, None, None, event)
        with self._tally:
            self._duplicates += repeated + offsets.count(None)
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

    def _refuse(
        self,
        outcomes: list[Outcome | None],
        dead: list[tuple[int, StreamEntry]],
        i: int,
        sub: Submission,
        exc: RecordRejectedError,
    ) -> None:
        outcomes[i] = Outcome(sub.serial, exc.seq, REJECTED, exc.code, exc.detail)
        dead.append((i, self._dead_letter(sub, exc.code, exc.detail, exc.seq)))

    def _over_budget(self, sub: Submission, event: AcceptedEvent) -> None:
        """Refuse a record its device's budget had no room for, as ``rate_limited``.

        A record over budget that the event log already holds goes on to be
        answered ``duplicate``: a re-drain never makes a sender keep what landed.
        """
        if self.events.contains([event.key]):
            return
        budget = self.budget
        assert budget is not None
        raise RecordRejectedError(
            RATE_LIMITED,
            f"{sub.serial} sent over {budget.burst:g} records at once or "
            f"{budget.rate:g} a second for too long; keep this record and send it later",
            event.seq,
        )

    def _read(
        self, sub: Submission, ctx: DeviceContext, payload: bytes
    ) -> tuple[AcceptedEvent, bool]:
        """The event an authentic payload carries, or its rejection.

        With it, whether its decoder knows its values plain JSON (for its encoding).
        """
        runtime = ctx.runtime
        door = sub.door
        if door == MQTT_LEGACY:
            env = decode_legacy(payload, sub.serial, runtime)
            seq, ts_ms, kind, v, body, dedupe_key = msgspec.structs.astuple(env)
            plain = False
        else:
            seq, ts_ms, kind, v, body, plain = read_payload(payload, sub.serial, runtime)
            dedupe_key = str(seq)
        validate = runtime.validators.get((kind, v))
        if validate is None:
            raise RecordRejectedError(
                UNKNOWN_TYPE, f"class {runtime.name} has no event type {kind} v{v}", seq
            )
        try:
            validate(body)
        except fastjsonschema.JsonSchemaException as exc:
            raise RecordRejectedError(SCHEMA_INVALID, str(exc), seq) from None
        if door == GATEWAY:
            try:
                self._check_bond(sub, kind, body)
            except RecordRejectedError as exc:
                raise RecordRejectedError(exc.code, exc.detail, seq) from None
        arrival = sub.arrival_ms
        ts, corrected = corrected_time(ts_ms, arrival)
        event = AcceptedEvent(
            arrival=arrival,
            body=body,
            clock_corrected=corrected,
            dedupe_key=dedupe_key,
            device_class=runtime.pack.name,
            device_ts=ts_ms,
            door=door,
            seq=seq,
            serial=sub.serial,
            tenant=ctx.tenant,
            ts=ts,
            type=kind,
            v=v,
        )
        return event, plain

    def _check_bond(self, sub: Submission, kind: str, body: dict[str, Any]) -> None:
        if self.bonds is None or sub.account is None:
            raise RecordRejectedError(NOT_BONDED, "gateway uploads need an account")
        if kind == "bond":
            challenge = body.get("challenge")
            if not isinstance(challenge, str) or not self.bonds.complete_pairing(
                sub.serial, challenge, sub.account, sub.arrival_ms / 1000
            ):
                raise RecordRejectedError(
                    NOT_BONDED, "the bond record does not answer a challenge issued to this account"
                )
        elif not self.bonds.is_bonded(sub.account, sub.serial):
            raise RecordRejectedError(NOT_BONDED, f"this account holds no bond to {sub.serial}")

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
