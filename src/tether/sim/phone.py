"""The owner's phone and its app: the only way a brush's data reaches tether.

What it models, from the seeds (000 parts 01 and 04):

- **In range a few minutes a day, the app often closed**: only an app that is
  open while the phone is near the brush connects.
- **A connection**: the app reads the brush's hello (an indication, never
  lost), writes the phone's time (the brush resyncs its clock), then drains the
  ring from the app's sync cursor over the BLE link model (lost notifications,
  rewinds, connections that drop mid-drain).
- **An app queue** of what it drained, uploaded in gateway mode with the
  account's token whenever the app runs with a network: often days later. The
  cursor moves only past a contiguous drained range, and only after the door's
  200 for all of it, so a dropped connection is drained again next time.
- **Flakiness**: no network; a 200 that never reached the app (it sends the
  same records again); an app killed before it kept a drain (the brush is
  drained again, if the ring still holds it); a lost cursor (a reinstall: the
  whole ring again).
- **Pairing** (contract section 9): the app asks tether for a challenge, hands
  it to the brush, the owner holds the button, and the app uploads the bond
  record at once.
- **Firmware updates** (scenarios with rollouts): whenever the app runs with a
  network it asks ``GET /v1/ota/jobs`` for its brushes' pending jobs and
  fetches each image with its token (byte ranges), decoupled from the brush
  being in range; at the next connections it hands the job to the brush and
  streams the image in chunks of the BLE payload, window after window, from the
  cursor the brush reports. The brush's ``ota-status`` and ``boot`` records come
  back in its ring like any other, and the app tells the brush how far tether
  has acknowledged its records (the boot attestation marks its slot good).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from tether.sim.ble import LinkModel, drain
from tether.sim.brush import Brush
from tether.sim.gateway import Gateway
from tether.sim.ledger import Ledger
from tether.sim.ota.fetch import Fetcher
from tether.sim.ota.phone import ChunkSender, RelayLink
from tether.sim.wire import Record

MAX_RECORDS_PER_REQUEST = 500  # contract section 7
REJECTED = "rejected"
RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class PhoneHabits:
    near: float  # chance the phone is in range around a brushing
    app_open: float  # chance the app is open then
    elsewhere: float  # chance a day the app is opened away from the brushes (uploads only)
    online: float  # chance the phone has a network when the app needs one
    response_lost: float  # chance a 200 never reaches the app
    forgets: float  # chance the app is killed before it kept what it drained
    cursor_lost: float  # chance, each time the app connects, that it lost its cursors


class Phone:
    def __init__(
        self,
        name: str,
        rng: random.Random,
        habits: PhoneHabits,
        link: LinkModel,
        gateway: Gateway,
        ledger: Ledger,
        token: str,
    ) -> None:
        self.name = name
        self.rng = rng
        self.habits = habits
        self.link = link
        self.gateway = gateway
        self.ledger = ledger
        self.token = token
        # What the app drained and has not had a 200 for, in order: (serial, seq) -> bytes.
        self.queue: dict[tuple[str, int], bytes] = {}
        self.cursors: dict[str, int] = {}  # next seq to ask each brush for, once uploaded
        self._reached: dict[str, int] = {}  # where the drains reached, not yet uploaded
        self.paired: set[str] = set()
        self.agreed: dict[str, list[str]] = {}  # what tether said it will use, per brush
        # The app's update side: None in scenarios without rollouts.
        self.fetcher: Fetcher | None = None
        self.ota_link = RelayLink()
        self.ota_window = (30.0, 90.0)  # seconds the app may stream in one connection
        self.updates: dict[str, tuple[dict[str, Any], ChunkSender]] = {}  # serial: job, image

    def online(self) -> bool:
        up = self.rng.random() < self.habits.online
        if not up:
            self.ledger.count("phone.offline")
        return up

    # in range of the household's brushes, app open
    def contact(self, now: float, brushes: list[Brush], window: float) -> None:
        self.ledger.count("phone.connections")
        if self.rng.random() < self.habits.cursor_lost:
            self.cursors.clear()
            self._reached.clear()
            self.ledger.count("phone.cursors_lost")
        for brush in brushes:
            if not brush.reachable(now):
                self.ledger.count("phone.brush_dead")
                continue
            if brush.serial not in self.paired and not self.pair(now, brush):
                continue
            self._sync(now, brush, window)
            if brush.serial in self.updates:
                self._stream(now, brush, window)
        self.upload(now)

    def pair(self, now: float, brush: Brush) -> bool:
        """Pair over tether (section 9); needs a network for the challenge."""
        if not self.online():
            self.ledger.count("phone.pairing_postponed")
            return False
        challenge = self.gateway.challenge(self.token, brush.serial)
        bond = brush.button_hold(now, bytes.fromhex(challenge), self.name)
        answer = self.gateway.upload(self.token, [(brush.serial, bond.data)])
        if answer.status != 200 or not answer.results:
            self.ledger.count("phone.pairing_throttled")
            return False
        result = answer.results[0]
        self._answered(brush.serial, bond.key, result.outcome, result.code, now)
        if result.outcome == REJECTED:
            return False
        self.paired.add(brush.serial)
        self.ledger.count("phone.paired")
        return True

    def _sync(self, now: float, brush: Brush, window: float) -> None:
        serial = brush.serial
        brush.acknowledged(self.cursors.get(serial, 1))
        hello = brush.hello(now)
        brush.set_time(now)
        # The app trusts only what tether acknowledged: it drains from there, again if need be.
        cursor = self.cursors.get(serial, 1)
        got = drain(brush.stream_from, cursor, self.link, self.rng, window)
        count = self.ledger.count
        count("ble.drains")
        count("ble.notifications", got.packets)
        count("ble.notifications_lost", got.lost)
        count("ble.rewinds", got.rerequests)
        count("ble.records_drained", len(got.received))
        count("ble.records_redrained", got.redrained)
        if got.dropped:
            count("ble.dropped_mid_drain")
        if self.rng.random() < self.habits.forgets:
            count("phone.drains_forgotten")
            return
        self._keep(serial, hello)
        for seq, data in got.received:
            self.queue[(serial, seq)] = data
        if got.received:
            self._reached[serial] = max(self._reached.get(serial, 1), got.received[-1][0] + 1)

    def _stream(self, now: float, brush: Brush, window: float) -> None:
        """Hand the brush its job and send image chunks for the rest of the window."""
        job, sender = self.updates[brush.serial]
        port = brush.update_port(job, now)
        if port is None:
            del self.updates[brush.serial]
            return
        seconds = min(window, random.Random(f"{self.name}:{now}").uniform(*self.ota_window))
        done = sender.window(port, seconds)
        count = self.ledger.count
        count("ota.ble_windows")
        count("ota.ble_chunks", done.sent)
        count("ota.ble_nacks", done.nacked)
        if done.interrupted:
            count("ota.ble_windows_interrupted")
        if done.resumed_from >= 0:
            count("ota.ble_resumed")
        if done.complete or done.refused is not None or port.outcome is not None:
            del self.updates[brush.serial]

    def _fetch_jobs(self) -> None:
        """The app asks tether for its brushes' update jobs and fetches their images."""
        assert self.fetcher is not None
        if not self.online():
            return
        doc = self.fetcher.json("/v1/ota/jobs")
        for entry in doc.get("jobs", []):
            serial, job = str(entry["serial"]), entry["job"]
            held = self.updates.get(serial)
            if held is not None and (held[0].get("job"), held[0].get("url")) == (
                job.get("job"),
                job.get("url"),
            ):
                continue  # fetched already (the same job, the same image)
            size = int(job["size"])
            image = bytearray()
            while len(image) < size:
                got = self.fetcher.range(str(job["url"]), len(image), min(size, len(image) + 65536))
                if got.status not in (200, 206):
                    self.ledger.count("ota.fetch_refused")
                    break
                image += got.data
            if len(image) != size:
                continue
            self.ledger.count("ota.images_fetched")
            envelope = json.dumps(job["manifest"], sort_keys=True, separators=(",", ":")).encode()
            rng = random.Random(f"{self.name}:{job.get('job')}")
            # The brush judges validity at the job's own signed time, not at one the app says.
            sender = ChunkSender(envelope, bytes(image), 0, self.ota_link, rng)
            self.updates[serial] = (job, sender)

    def _keep(self, serial: str, record: Record) -> None:
        assert record.seq is not None
        self.queue[(serial, record.seq)] = record.data

    # uploads
    def open_elsewhere(self, now: float) -> None:
        """The app opened away from the brushes: it uploads what it holds, if it can."""
        self.ledger.count("phone.opened_elsewhere")
        self.upload(now)

    def upload(self, now: float) -> None:
        while self.queue:
            if not self.online():
                self.ledger.count("phone.uploads_postponed")
                return
            batch = list(self.queue.items())[:MAX_RECORDS_PER_REQUEST]
            answer = self.gateway.upload(self.token, [(s, data) for (s, _), data in batch])
            self.ledger.count("gateway.requests")
            if answer.status == 429:
                self.ledger.count("gateway.throttled")
                return
            done: list[tuple[str, int]] = []
            for ((serial, seq), _), result in zip(batch, answer.results, strict=True):
                if self._answered(serial, str(seq), result.outcome, result.code, now):
                    done.append((serial, seq))
            if answer.use:
                self.agreed |= answer.use
            if self.rng.random() < self.habits.response_lost:
                self.ledger.count("gateway.responses_lost")
                return  # the app never saw the 200: it keeps everything and sends it again
            for key in done:
                self.queue.pop(key, None)
            self._commit_cursors()
            if len(done) < len(batch):
                return  # some must wait (rate_limited): try on a later opening
        if self.fetcher is not None:
            self._fetch_jobs()

    def _answered(self, serial: str, key: str, outcome: str, code: str | None, now: float) -> bool:
        """Book the door's answer; True when the app may forget the record."""
        self.ledger.count(f"gateway.{outcome}")
        if outcome == REJECTED and code == RATE_LIMITED:
            return False  # the one reject that asks the sender to keep the record
        self.ledger.delivered(serial, key, now)
        if outcome == REJECTED:
            self.ledger.refused(serial, key, code or "?")
        return True

    def _commit_cursors(self) -> None:
        waiting = {serial for serial, _ in self.queue}
        for serial, reached in self._reached.items():
            if serial not in waiting:
                self.cursors[serial] = max(self.cursors.get(serial, 1), reached)
