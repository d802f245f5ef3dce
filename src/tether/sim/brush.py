"""The toothbrush: BLE only, a flash ring of signed records, no real-time clock.

What it models, from the seeds (000 parts 01, 04-06):

- **Sessions at realistic times**: a morning and an evening brushing (each
  sometimes skipped), now and then a third at midday; about two minutes, split
  over four quadrants, with pressure events. Each is a signed 20-byte session
  frame.
- **A flash ring of fixed size**: every record (sessions, device events, hellos,
  bond records) takes the next value of the monotonic counter, which never goes
  back, and one slot; a full ring overwrites its oldest record. What a phone
  never drained before that is gone, and the device says so through
  ``lowest_seq_held`` in its hello.
- **No battery-backed clock**: a crystal that drifts (a few hundred ppm) between
  phone contacts. When the battery dies, the clock restarts at 0 (1970) on the
  next power-up and counts from there until a phone writes the time again; the
  session frame's ``clock synced`` flag says which.
- **Battery**: a session costs a few percent, standby a little; owners charge
  on their own habit (it lives on the charger, they charge it when it warns at
  20 %, or only once it died). Crossing 20 % makes a ``battery_low`` event.
- **Brush heads**: genuine heads carry an id chip (``head_attached`` when one is
  fitted); off-brand heads read no id, and their sessions say ``head_id: null``.
- **Hello** on every phone contact: firmware, hardware, capabilities and
  ``lowest_seq_held``.
- **Pairing**: only a held button makes it forget its bond and sign a bond
  record answering the phone's challenge.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

from tether.devices.secure_element import SecureElement
from tether.firmware.jobs import Job
from tether.sim.ble import Stored
from tether.sim.ledger import Ledger
from tether.sim.ota.agent import UpdateAgent, key
from tether.sim.ota.device import OtaDevice
from tether.sim.ota.install import Committed, Refused
from tether.sim.ota.receiver import Ack, Reply
from tether.sim.wire import (
    Record,
    bond_frame,
    device_event_frame,
    hello_body,
    json_record,
    session_frame,
)

DAY = 86400.0
BATTERY_LOW_PCT = 20.0
STANDBY_PCT_PER_DAY = 0.4
SESSION_PCT_PER_MINUTE = 1.5


@dataclass(frozen=True)
class BrushHabits:
    """One person's way with their brush."""

    morning: float  # chance of a morning session on a given day
    evening: float
    midday: float
    duration_s: float  # mean session length
    charging: str  # dock | when-low | when-dead
    off_brand_heads: bool


class Rtc:
    """The brush's clock: no backup battery, a crystal that drifts."""

    def __init__(self, drift: float, now: float, synced: bool = True) -> None:
        self.drift = drift  # fraction: 2e-4 runs 17 s a day fast
        self._base = now if synced else 0.0
        self._since = now
        self.synced = synced  # written by a phone since the last power-up

    def read(self, now: float) -> float:
        return self._base + (now - self._since) * (1.0 + self.drift)

    def set(self, now: float) -> None:
        """A phone wrote its time (phones keep network time)."""
        self._base, self._since, self.synced = now, now, True

    def power_up(self, now: float) -> None:
        """Back from a dead battery: counting from the epoch, 1970-01-01."""
        self._base, self._since, self.synced = 0.0, now, False


class Brush:
    def __init__(
        self,
        serial: str,
        element: SecureElement,
        rng: random.Random,
        habits: BrushHabits,
        ring_slots: int,
        ledger: Ledger,
        now: float,
        fw: str,
        hw: str,
        capabilities: list[str],
    ) -> None:
        self.serial = serial
        self.rng = rng
        self.habits = habits
        self.ring_slots = ring_slots
        self.ledger = ledger
        self.fw, self.hw, self.capabilities = fw, hw, capabilities
        self._sign = element.sign
        self.next_seq = 1
        self.ring: deque[Record] = deque()
        self.rtc = Rtc(rng.gauss(0.0, 150e-6), now)
        self.battery = rng.uniform(35.0, 90.0)
        self._battery_at = now
        self.dead = False
        self.charge_due: float | None = None
        self.head_id = 0 if habits.off_brand_heads else rng.randint(1, 0xFFFF)
        self.bonded_phone: str | None = None
        self.sessions = 0
        # The update side (scenarios with rollouts): A/B flash, and the agent that reports.
        self.ota: OtaDevice | None = None
        self.agent: UpdateAgent | None = None
        self._boot_seq: int | None = None  # the boot record whose acknowledgement marks good
        self._boots_counted = 0  # boots of the update side already in the counts
        self._now = now  # the time of the phone contact under way
        ledger.device(serial, "oral-care-brush")

    # flash
    def _take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def _store(self, record: Record) -> Record:
        if len(self.ring) >= self.ring_slots:
            old = self.ring.popleft()
            assert old.seq is not None
            self.ledger.evicted(self.serial, old.seq)
            self.ledger.count("brush.ring_overwrites")
        self.ring.append(record)
        self.ledger.made(self.serial, record)
        return record

    @property
    def lowest_seq_held(self) -> int:
        first = self.ring[0].seq if self.ring else self.next_seq
        assert first is not None
        return first

    def stream_from(self, seq: int) -> list[Stored]:
        """The stored records from ``seq`` on, oldest first (what a cursor write asks for)."""
        return [(r.seq, r.data) for r in self.ring if r.seq is not None and r.seq >= seq]

    # battery
    def _settle_battery(self, now: float) -> None:
        if self.dead:
            return
        self.battery -= STANDBY_PCT_PER_DAY * (now - self._battery_at) / DAY
        self._battery_at = now
        if self.battery <= 0:
            self.battery, self.dead = 0.0, True
            self.ledger.count("brush.battery_died")

    def charge(self, now: float) -> None:
        """On the charger long enough to fill up; a dead brush powers up with its clock at 0."""
        self._settle_battery(now)
        if self.dead:
            self.dead = False
            self.rtc.power_up(now)
            self.ledger.count("brush.clock_resets")
        self.battery, self._battery_at, self.charge_due = 100.0, now, None

    def charge_plan(self, now: float) -> float | None:
        """When the owner puts it on the charger next, by habit (None: not yet)."""
        if self.charge_due is not None:
            return None
        habit = self.habits.charging
        if habit == "dock":
            self.charge_due = now + self.rng.uniform(600, 3600)
        elif habit == "when-low" and self.battery < BATTERY_LOW_PCT:
            self.charge_due = now + self.rng.uniform(0.2, 1.5) * DAY
        elif habit == "when-dead" and self.dead:
            self.charge_due = now + self.rng.uniform(0.5, 3.0) * DAY
        return self.charge_due

    # what the owner does
    def brush(self, now: float) -> Record | None:
        """A brushing session; None when the battery is dead (the brush does not start)."""
        self._settle_battery(now)
        if self.dead:
            self.ledger.count("brush.sessions_missed_dead")
            return None
        duration = max(15, min(400, round(self.rng.gauss(self.habits.duration_s, 25))))
        weights = [0.6 + self.rng.random() for _ in range(4)]
        coverage = [round(duration * w / sum(weights)) for w in weights]
        pressure = _poisson(self.rng, 1.2)
        start = self.rtc.read(now)
        record = session_frame(
            self._take_seq(),
            int(start),
            duration,
            coverage,
            pressure,
            round(self.battery),
            self.head_id,
            pressure >= 3,
            self.rtc.synced,
            self._sign,
            now,
        )
        self._store(record)
        self.sessions += 1
        self.ledger.count("brush.sessions")
        before = self.battery
        self.battery -= SESSION_PCT_PER_MINUTE * duration / 60
        end = now + duration
        if self.battery <= 0:
            self.battery, self.dead = 0.0, True
            self.ledger.count("brush.battery_died")
        elif before >= BATTERY_LOW_PCT > self.battery:
            self._event(end, "battery_low", math.floor(self.battery))
        self._battery_at = end
        return record

    def new_head(self, now: float) -> None:
        """A fresh head; a genuine one announces its id, an off-brand one reads nothing."""
        self._settle_battery(now)
        self.head_id = 0 if self.habits.off_brand_heads else self.rng.randint(1, 0xFFFF)
        if self.head_id and not self.dead:
            self._event(now, "head_attached", self.head_id)

    def _event(self, now: float, event: str, value: int) -> None:
        seq = self._take_seq()
        record = device_event_frame(seq, int(self.rtc.read(now)), event, value, self._sign, now)
        self._store(record)
        self.ledger.count(f"brush.{event}")

    # what a phone does over BLE
    def reachable(self, now: float) -> bool:
        self._settle_battery(now)
        return not self.dead

    def hello(self, now: float) -> Record:
        """The hello of a phone contact, stored like every record, as the newest."""
        seq = self._take_seq()
        # The slot this record takes may push the oldest out: say what stays.
        held = (
            [r.seq for r in self.ring][1:]
            if len(self.ring) >= self.ring_slots
            else [r.seq for r in self.ring]
        )
        lowest = held[0] if held else seq
        anchors = self.agent.trust_anchors if self.agent is not None else None
        body = hello_body(self.fw, self.hw, self.capabilities, lowest, anchors)
        record = json_record(
            self.serial, seq, int(self.rtc.read(now) * 1000), "hello", body, self._sign, now
        )
        self._store(record)
        assert self.lowest_seq_held == lowest
        self.ledger.count("brush.hellos")
        return record

    def set_time(self, now: float) -> None:
        self.rtc.set(now)

    def button_hold(self, now: float, challenge: bytes, phone: str) -> Record:
        """The owner holds the button: forget the old bond, bond this phone, sign the answer."""
        self.bonded_phone = phone
        record = bond_frame(self._take_seq(), challenge, self._sign, now)
        self._store(record)
        self.ledger.count("brush.button_holds")
        return record

    # firmware updates, relayed by the phone
    def report(self, type: str, body: dict[str, object]) -> None:
        """A record of the update side (``ota-status``, ``boot``), stored like any other."""
        seq = self._take_seq()
        at = int(self.rtc.read(self._now) * 1000)
        record = json_record(self.serial, seq, at, type, dict(body), self._sign, self._now)
        self._store(record)
        self.ledger.count(f"brush.{type}")
        if type == "boot":
            self._boot_seq = seq

    def acknowledged(self, below: int) -> None:
        """The phone says tether acknowledged every record below ``below``."""
        if self.ota is not None and self._boot_seq is not None and self._boot_seq < below:
            self._boot_seq = None
            self.ota.acknowledge()

    def update_port(self, message: dict[str, object], now: float) -> BrushUpdate | None:
        """The phone hands over an update job: the port its chunks go to, or None."""
        self._now = now
        if self.agent is None:
            return None
        job = self.agent.read(dict(message))
        if job is None or key(job) in self.agent.done:
            return None
        return BrushUpdate(self, job)

    def reboot(self, now: float) -> None:
        """Into what the bootloader chooses (the new slot after an install); attest it."""
        assert self.ota is not None
        self._now = now
        boot = self.ota.boot_until_up()
        # (an install boots the new slot once itself, before the device reboots)
        crashed = sum(1 for b in self.ota.boots[self._boots_counted :] if b.crashed)
        self._boots_counted = len(self.ota.boots)
        if crashed:
            self.ledger.count("ota.crashes_at_boot", crashed)
        self.fw = boot.version
        assert boot.record is not None
        self.report("boot", boot.record.body())
        self.ledger.count("brush.reboots")


class BrushUpdate:
    """What the phone's chunk sender talks to: the brush taking one job over BLE."""

    def __init__(self, brush: Brush, job: Job) -> None:
        self.brush = brush
        self.job = job
        self.outcome: str | None = None
        self._verifying = False

    def offer(self, envelope: bytes, platform_time: int, payload: int) -> object:
        """The brush judges the job's own manifest at the job's verified time."""
        brush, agent = self.brush, self.brush.agent
        assert brush.ota is not None and agent is not None
        version = self.job.manifest.manifest().version
        if brush.ota.version == version:
            agent.done.add(key(self.job))
            return Committed(brush.ota.running or "A", version)
        answer = brush.ota.offer(self.job.manifest.envelope(), self.job.time, payload)
        if isinstance(answer, Refused):
            if answer.reason not in ("busy", "off"):
                agent.done.add(key(self.job))
                agent.status(
                    self.job.rollout, version, "failed", f"{answer.reason}: {answer.detail}"
                )
            return answer
        agent.status(self.job.rollout, version, "downloading")
        if isinstance(answer, Committed):
            self._installed(version)
        return answer

    def receive(self, chunk: bytes) -> Reply:
        brush, agent = self.brush, self.brush.agent
        assert brush.ota is not None and agent is not None
        cursor = brush.ota.receiver.cursor()
        last = cursor is not None and cursor.cursor + 2 == cursor.count
        version = self.job.manifest.manifest().version
        if last and not self._verifying:
            self._verifying = True
            agent.status(self.job.rollout, version, "verifying")
        reply = brush.ota.receive(chunk)
        if isinstance(reply, Ack) and reply.complete and self.outcome is None:
            if brush.ota.flash.meta.pending is not None:
                self._installed(version)
            else:
                events = brush.ota.events
                why = events[-1].detail if events else "not installed"
                agent.done.add(key(self.job))
                agent.status(self.job.rollout, version, "failed", why)
                self.outcome = "failed"
        return reply

    def _installed(self, version: str) -> None:
        brush, agent = self.brush, self.brush.agent
        assert agent is not None
        agent.done.add(key(self.job))
        agent.status(self.job.rollout, version, "installed")
        self.outcome = "installed"
        brush.ledger.count("ota.installed")
        brush.reboot(brush._now)


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; the means here are small)."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
