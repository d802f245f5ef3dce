"""The adversaries of a run: forged, replayed and remotely re-paired records, on the real door.

All of them come through the HTTPS door with a real account's token, at the
scenario's ``adversaries.at``, while the world goes on around them:

- **The forger**, a decompiled app in a customer's hands: the right frames and
  JSON, but no device key. It signs with a key of its own, with its own brush's
  key on records naming another brush, or copies a genuine signature onto an
  altered payload (a new seq, a longer session). For its own brushes and for
  others'. Every one is ``bad_signature`` (section 2: the signature binds the
  record to the named serial's key).
- **The replayer**, who captured genuine uploads: sent again into the same
  account they are ``duplicate`` and stored no second time; into another
  account, ``not_bonded`` (section 7: the account must hold a current bond).
- **The phished account**, trying to take a brush it never touched (section 9):
  it asks a pairing challenge for it (the door issues one to any account), then
  uploads a bond record answering it signed with another key, the brush's old
  bond record with the new challenge spliced in under the old signature
  (``bad_signature`` both), and the old bond record as it was (``not_bonded``:
  its challenge was issued to the owner and used).

Before and after, once the platform has landed everything in flight, the
adversary reads what the platform holds for every device it touched: the
events stored, the owner and the bond history, the device state. Any answer
other than the expected one, and any difference, is a mismatch of the run.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from tether.platform import Platform
from tether.sim.check import Mismatch
from tether.sim.errors import SimulationError
from tether.sim.gateway import Gateway
from tether.sim.homes import Household
from tether.sim.ledger import Ledger
from tether.sim.phone import MAX_RECORDS_PER_REQUEST
from tether.sim.scenario import Adversaries
from tether.sim.wire import Record, Signer, bond_frame, json_record, session_frame

BAD_SIGNATURE, NOT_BONDED, DUPLICATE = "bad_signature", "not_bonded", "duplicate"
# Forged records take seqs far past anything the brush made, so one let in would show.
FORGED_SEQ_OFFSET = 1_000_000
_SEQ = slice(2, 6)  # a frame's seq, uint32 little-endian (section 4)
_DURATION = slice(10, 12)  # a session frame's duration_s, uint16
_CHALLENGE = slice(6, 20)  # a bond frame's challenge


def software_key() -> Signer:
    """A P-256 key of the attacker's own: signatures the right shape, from the wrong key."""
    key = ec.generate_private_key(ec.SECP256R1())

    def sign(payload: bytes) -> bytes:
        der = key.sign(hashlib.sha256(payload).digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


@dataclass
class Attempt:
    """One record an adversary sent, what the contract says it gets, and what it got."""

    attack: str  # forger | replayer | phisher
    how: str  # the variant, in words
    serial: str
    account: str  # whose token: "attacker" or "owner"
    expected: str  # "duplicate" or a reject code
    data: bytes
    answer: str = "unanswered"  # "accepted", "duplicate", or the reject code

    @property
    def ok(self) -> bool:
        return self.answer == self.expected


@dataclass(frozen=True)
class Footprint:
    """What the platform holds for one device: what an attack must not change."""

    events: frozenset[str]  # dedupe keys stored
    owner: str | None
    bonds: int  # bonds the device has had
    state: str  # the device state, as JSON

    def differences(self, after: Footprint) -> list[str]:
        out = []
        if after.events != self.events:
            added = sorted(after.events - self.events)[:5]
            out.append(f"stored events {len(self.events)} -> {len(after.events)} (new: {added})")
        if after.owner != self.owner:
            out.append(f"ownership moved from {self.owner} to {after.owner}")
        if after.bonds != self.bonds:
            out.append(f"bond history {self.bonds} -> {after.bonds} bonds")
        if after.state != self.state:
            out.append(f"device state changed: {self.state} -> {after.state}")
        return out


def footprint(platform: Platform, serial: str) -> Footprint:
    events = platform.telemetry.by_device(serial, 0, 1 << 62, limit=10_000_000)
    state = platform.device_state.get(serial)
    return Footprint(
        frozenset(e.dedupe_key for e in events),
        platform.accounts.owner(serial),
        len(platform.accounts.bond_history(serial)),
        json.dumps(_plain(state), sort_keys=True, default=str),
    )


def _plain(value: Any) -> Any:
    slots = getattr(type(value), "__slots__", None)
    if hasattr(value, "__dict__"):
        return vars(value)
    if slots:
        return {name: getattr(value, name) for name in slots}
    return value


class Adversary:
    """Every attack of a scenario, run at once at ``adversaries.at``, and their verdicts."""

    def __init__(
        self,
        spec: Adversaries,
        seed: int,
        households: list[Household],
        ledger: Ledger,
        gateway: Gateway,
        platform: Platform,
        land: Callable[[], None],
        now: Callable[[], float],
    ) -> None:
        self.now = now  # the simulated clock
        self.spec = spec
        self.rng = random.Random(f"{seed}:adversary")
        self.households = households
        self.ledger = ledger
        self.gateway = gateway
        self.platform = platform
        self.land = land  # waits until the platform has landed what is in flight
        self.attempts: list[Attempt] = []
        self.changed: dict[str, list[str]] = {}  # serial -> what an attack changed
        self.struck = False

    # choosing the attacker and the victims
    def _bonded(self, household: Household) -> list[str]:
        return [b.serial for b in household.brushes if b.serial in household.phone.paired]

    def _genuine(self, serial: str, types: Iterable[str]) -> list[Record]:
        """Records of the brush that reached the door: what a capture of its uploads holds."""
        book = self.ledger.books[serial]
        kinds = set(types)
        return [book.made[k] for k in sorted(book.delivered, key=int) if book.made[k].type in kinds]

    def strike(self) -> None:
        """Run every attack, and compare what the platform holds before and after."""
        homes = [h for h in self.households if self._bonded(h)]
        if len(homes) < 2:
            raise SimulationError(
                f"the adversaries found {len(homes)} households with a brush paired through "
                "tether when they struck; they need two (an attacker's and a victim's): give the "
                "fleet more brushes, phones that open the app more often, or a later "
                "adversaries.at"
            )
        attacker = self.rng.choice(homes)
        victims = [s for h in homes if h is not attacker for s in self._bonded(h)]
        own = self._bonded(attacker)
        owner_token = {s: h.phone.token for h in homes for s in self._bonded(h)}
        own_key = self.platform.secure_elements.open(own[0]).sign
        self.rng.shuffle(victims)
        self._forger(own, victims, own_key)
        self._replayer(victims)
        self._phisher(victims, attacker.phone.token, own_key)
        touched = sorted({a.serial for a in self.attempts})
        self.land()
        before = {s: footprint(self.platform, s) for s in touched}
        by_token: dict[str, list[Attempt]] = {}
        for attempt in self.attempts:
            token = (
                attacker.phone.token
                if attempt.account == "attacker"
                else owner_token[attempt.serial]
            )
            by_token.setdefault(token, []).append(attempt)
        for token, attempts in by_token.items():
            self._send(token, attempts)
        self.land()
        for serial in touched:
            diff = before[serial].differences(footprint(self.platform, serial))
            if diff:
                self.changed[serial] = diff
        self.struck = True
        count = self.ledger.count
        for attempt in self.attempts:
            count(f"attacks.{attempt.attack}")
            count(f"attacks.answered.{attempt.answer}")

    def _send(self, token: str, attempts: list[Attempt]) -> None:
        for at in range(0, len(attempts), MAX_RECORDS_PER_REQUEST):
            batch = attempts[at : at + MAX_RECORDS_PER_REQUEST]
            answer = self.gateway.upload(token, [(a.serial, a.data) for a in batch])
            if answer.status != 200:
                raise SimulationError(
                    f"the HTTPS door throttled the adversaries' upload ({answer.status}); lower "
                    "adversaries.forger, .replayer or .phisher, or raise ingest.burst"
                )
            for attempt, result in zip(batch, answer.results, strict=True):
                rejected = result.outcome == "rejected"
                attempt.answer = (result.code or "rejected") if rejected else result.outcome

    # the attacks
    def _forger(self, own: list[str], victims: list[str], own_key: Signer) -> None:
        """A decompiled app: the right bytes, signed by the wrong key, for any brush."""
        if self.spec.forger == 0:
            return
        other = software_key()
        targets = own + victims[: max(1, len(victims) // 2)]
        variants: list[tuple[str, Callable[[str, int], bytes | None]]] = [
            ("session frame signed by the app's own key", partial(self._forged_session, other)),
            ("session frame signed by the attacker's own brush", self._other_brush(own_key, own)),
            ("genuine signature on a session with another seq and duration", self._spliced),
            (
                "hello declaring every record lost, signed by the app's key",
                partial(self._forged_hello, other),
            ),
        ]
        made = 0
        while made < self.spec.forger:
            serial = targets[made % len(targets)]
            how, forge = variants[(made // len(targets)) % len(variants)]
            data = forge(serial, FORGED_SEQ_OFFSET + made)
            made += 1
            if data is None:  # no genuine session to splice; another variant next time
                data = self._forged_session(other, serial, FORGED_SEQ_OFFSET + made)
                how = variants[0][0]
            self.attempts.append(Attempt("forger", how, serial, "attacker", BAD_SIGNATURE, data))

    def _forged_session(self, sign: Signer, serial: str, seq: int) -> bytes:
        now = int(self.now())
        return session_frame(
            seq, now, 600, [150, 150, 150, 150], 0, 80, 0, False, True, sign, float(now)
        ).data

    def _other_brush(self, own_key: Signer, own: list[str]) -> Callable[[str, int], bytes]:
        def forge(serial: str, seq: int) -> bytes:
            if serial == own[0]:  # its own key on its own serial would be genuine: use the app's
                return self._forged_session(software_key(), serial, seq)
            return self._forged_session(own_key, serial, seq)

        return forge

    def _spliced(self, serial: str, seq: int) -> bytes | None:
        sessions = self._genuine(serial, ["session"])
        if not sessions:
            return None
        data = bytearray(self.rng.choice(sessions).data)
        data[_SEQ] = struct.pack("<I", seq)
        data[_DURATION] = struct.pack("<H", 900)
        return bytes(data)

    def _forged_hello(self, sign: Signer, serial: str, seq: int) -> bytes:
        now = self.now()
        body = {"fw": "9.9.9", "hw": "B", "capabilities": [], "lowest_seq_held": seq}
        return json_record(serial, seq, int(now * 1000), "hello", body, sign, now).data

    def _replayer(self, victims: list[str]) -> None:
        """Captured genuine uploads, sent again: into the owner's account, and into another."""
        captured = [
            record
            for serial in victims
            for record in self._genuine(serial, ["session", "device-event", "hello"])
        ]
        picked = self.rng.sample(captured, min(self.spec.replayer, len(captured)))
        serial_of = {id(r): s for s in victims for r in self.ledger.books[s].made.values()}
        for record in picked:
            serial = serial_of[id(record)]
            self.attempts.append(
                Attempt(
                    "replayer", f"{record.type} sent again", serial, "owner", DUPLICATE, record.data
                )
            )
            self.attempts.append(
                Attempt(
                    "replayer",
                    f"{record.type} sent into another account",
                    serial,
                    "attacker",
                    NOT_BONDED,
                    record.data,
                )
            )

    def _phisher(self, victims: list[str], token: str, own_key: Signer) -> None:
        """A phished account asks to pair brushes it never touched, and answers for them."""
        other = software_key()
        for serial in victims[: self.spec.phisher]:
            challenge = bytes.fromhex(self.gateway.challenge(token, serial))
            fresh = FORGED_SEQ_OFFSET + len(self.attempts)
            now = self.now()
            add = self.attempts.append
            forged = bond_frame(fresh, challenge, other, now).data
            add(
                Attempt(
                    "phisher",
                    "bond frame answering its challenge, signed by another key",
                    serial,
                    "attacker",
                    BAD_SIGNATURE,
                    forged,
                )
            )
            body = {"challenge": challenge.hex()}
            as_json = json_record(serial, fresh + 1, int(now * 1000), "bond", body, own_key, now)
            add(
                Attempt(
                    "phisher",
                    "JSON bond answering its challenge, signed by its own brush",
                    serial,
                    "attacker",
                    BAD_SIGNATURE,
                    as_json.data,
                )
            )
            for old in self._genuine(serial, ["bond"])[-1:]:
                spliced = bytearray(old.data)
                spliced[_CHALLENGE] = challenge
                add(
                    Attempt(
                        "phisher",
                        "old bond frame, its challenge swapped for the new one",
                        serial,
                        "attacker",
                        BAD_SIGNATURE,
                        bytes(spliced),
                    )
                )
                add(
                    Attempt(
                        "phisher",
                        "old bond frame replayed",
                        serial,
                        "attacker",
                        NOT_BONDED,
                        old.data,
                    )
                )

    # verdicts
    def mismatches(self) -> list[Mismatch]:
        out = []
        for a in self.attempts:
            if not a.ok:
                cls = self.ledger.books[a.serial].device_class
                detail = f"{a.attack}: {a.how} was answered {a.answer}, expected {a.expected}"
                out.append(Mismatch(a.serial, cls, "attack", detail))
        for serial, changes in sorted(self.changed.items()):
            cls = self.ledger.books[serial].device_class
            for change in changes:
                out.append(Mismatch(serial, cls, "attack", f"an attack changed a store: {change}"))
        return out
