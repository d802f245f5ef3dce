"""How a cart takes an update job: fetch over HTTPS in ranges, verify, commit, reboot, attest.

The cart (``tether.sim.cart``) owns one ``CartUpdater`` and calls into it when an
update job arrives on its commands topic, when its link comes up, when it is
back at the dock, when it boots, when it powers off and when the broker
acknowledges a record. The updater holds the update side's state: the cart's
A/B flash (``ota``), its update agent, its HTTPS client for images, the job
under way and where its download stands.

- A job is read and checked by the agent; the same job again (QoS 1) is ignored.
  A job that arrives while a customer is shopping waits until the cart is docked.
- The image is fetched with the cart's client certificate in pieces of ``PIECE``
  bytes, at the speed of the link it is on. A link that drops mid-piece keeps
  what arrived, flaps the cart's Wi-Fi, and the download resumes at the first
  byte not yet kept once the cart is online again.
- A verified, committed image reboots the cart; at boot the updater counts what
  the bootloader did, sends the ``boot`` attestation, and marks the slot good
  once the broker acknowledges it. The image's declared defects take effect: its
  fault rate on this revision, and a crash some hours after boot (which the cart
  plays out: ``Cart.crash_after``).

What it asks of the cart is the ``UpdatingCart`` protocol below, and nothing else.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from tether.firmware.jobs import Job
from tether.sim.engine import Engine
from tether.sim.ledger import Ledger
from tether.sim.ota.agent import UpdateAgent, key
from tether.sim.ota.device import OtaDevice
from tether.sim.ota.fetch import Fetcher
from tether.sim.wire import Record

HOUR = 3600.0
PIECE = 16 * 1024  # bytes a cart asks the door for in one range request
BYTES_PER_S = {"wifi": 250_000.0, "lte-m": 25_000.0}


class UpdatingCart(Protocol):
    """The cart as its updater sees it: its clock and counts, where it stands, what it does."""

    @property
    def engine(self) -> Engine: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def hw(self) -> str: ...
    @property
    def state(self) -> str: ...  # off | docked | active | ...
    @property
    def shop(self) -> object | None: ...  # a customer's trip under way
    @property
    def net(self) -> str: ...  # up when connected
    @property
    def via(self) -> str | None: ...  # the link it means to use

    fw: str  # the running image, as the boot record says
    fault_multiplier: float  # the running image's, on this cart's revision

    def _make(self, type: str, body: dict[str, Any]) -> Record: ...
    def _power_off(self, clean: bool = True) -> None: ...
    def power_on(self) -> None: ...
    def wifi_flap(self, seconds: float) -> None: ...
    def crash_after(self, seconds: float | None) -> None: ...


class CartUpdater:
    def __init__(self, cart: UpdatingCart, rng: random.Random) -> None:
        self.cart = cart
        self.rng = rng  # the update side's stream, shared with the cart's crash and power cycle
        # Wired by the world when the scenario has rollouts; None: the cart runs its fw as is.
        self.ota: OtaDevice | None = None
        self.agent: UpdateAgent | None = None
        self.fetcher: Fetcher | None = None
        self.transfer_drops = 0.1  # chance a download's link drops on the way
        self.job: Job | None = None  # persisted with the transfer: what is being installed
        self._job_waits = False  # held until the cart is docked
        self._boot_seq: int | None = None  # the boot record whose acknowledgement marks good
        self._power_token = 0  # moves on at every boot and power-off: a piece in flight is lost
        self._fetching = False
        self._boots_counted = 0  # boots of the update side already in the counts

    # the cart's power
    def boot(self) -> None:
        """The bootloader and the image it chose; its attestation; its defects from now on."""
        cart = self.cart
        assert self.ota is not None and self.agent is not None
        boot = self.ota.boot_until_up()
        # (an install boots the new slot once itself, before the device reboots)
        crashed = sum(1 for b in self.ota.boots[self._boots_counted :] if b.crashed)
        self._boots_counted = len(self.ota.boots)
        if crashed:
            cart.ledger.count("ota.crashes_at_boot", crashed)
        if boot.record is not None and boot.record.rolled_back:
            cart.ledger.count("ota.rolled_back_by_bootloader")
        cart.fw = boot.version
        assert boot.record is not None
        self._boot_seq = cart._make("boot", boot.record.body()).seq
        defects = self.ota.defects
        cart.fault_multiplier = defects.fault_multiplier(cart.hw)
        self._power_token += 1
        hours = defects.crash_after_hours(cart.hw)
        cart.crash_after(None if hours is None else hours * HOUR * self.rng.uniform(0.95, 1.05))
        if self.agent.transfer is not None or (self.job is not None and not self._job_waits):
            # A transfer the power cut: the job was kept with it, the cursor says where.
            self.agent.transfer = None
            self._job_waits = self.job is not None

    def powered_off(self) -> None:
        self._power_token += 1
        self._fetching = False

    def acknowledged(self, seq: int) -> None:
        """The broker acknowledged record ``seq``: the attestation, if it is that, marks good."""
        if seq == self._boot_seq and self.ota is not None:
            self._boot_seq = None
            self.ota.acknowledge()  # the attestation reached tether: the slot is good

    # the job
    def take(self, message: dict[str, Any]) -> None:
        """An update job on the commands topic."""
        ledger = self.cart.ledger
        if self.agent is None:
            ledger.count("ota.jobs_ignored")
            return
        ledger.count("ota.jobs")
        job = self.agent.read(message)
        if job is None:
            ledger.count("ota.jobs_refused")
            return
        if self.job is not None and key(self.job) == key(job):
            return  # the same job again (QoS 1): it is under way already
        self.job, self._job_waits = job, True
        self.agent.transfer = None
        self.step()

    def step(self) -> None:
        """Go on with the update: start it once docked, fetch the next piece while online."""
        cart = self.cart
        agent, job = self.agent, self.job
        if agent is None or job is None or self._fetching or cart.state == "off":
            return
        if self._job_waits:
            if cart.shop is not None or cart.state != "docked":
                return  # a customer has it: install when it is back at the dock
            self._job_waits = False
            if agent.start(job) is None:
                self.job = None
                return
            if agent.next_range() is None and agent.transfer is not None:
                self._installed_or_not(agent.finished())
                return
        if agent.transfer is None:
            self.job = None
            return
        via = cart.via
        if cart.net != "up" or via is None:
            return  # on_up goes on from the cursor
        span = agent.next_range()
        if span is None:
            self._installed_or_not(agent.finished())
            return
        assert self.fetcher is not None
        start = span[0]
        stop = min(span[1], start + PIECE)
        got = self.fetcher.range(job.url, start, stop)
        if got.status not in (200, 206):
            cart.ledger.count("ota.fetch_refused")
            agent.abandon(f"download refused: {got.status} {got.detail}"[:200])
            self.job = None
            return
        data = got.data
        seconds = len(data) / BYTES_PER_S[via]
        dropped = self.rng.random() < self.transfer_drops * len(data) / max(job.size, 1)
        if dropped:  # the link goes mid-piece: what arrived is kept, the rest comes again
            data = data[: len(data) // 2]
            seconds /= 2
        self._fetching = True
        cart.ledger.count("ota.bytes_fetched", len(data))
        token = self._power_token
        cart.engine.after(seconds, lambda: self._piece(job, start, data, dropped, token))

    def _piece(self, job: Job, start: int, data: bytes, dropped: bool, token: int) -> None:
        if token != self._power_token:
            return  # the cart went off meanwhile: the piece never landed
        self._fetching = False
        agent = self.agent
        if agent is None or self.job is not job:
            return
        if agent.transfer is None:
            return
        outcome = agent.feed(start, data)
        if outcome != "more":
            self._installed_or_not(outcome)
            return
        if dropped:
            self.cart.ledger.count("ota.downloads_resumed")
            self.cart.wifi_flap(self.rng.uniform(5, 60))
            return
        self.step()

    def _installed_or_not(self, outcome: str) -> None:
        cart = self.cart
        self.job = None
        if outcome != "installed":
            cart.ledger.count("ota.installs_failed")
            return
        cart.ledger.count("ota.installed")
        cart._power_off()
        cart.engine.after(self.rng.uniform(20, 60), cart.power_on)
