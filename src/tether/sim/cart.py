"""The scan-and-pay cart: Wi-Fi with LTE-M fallback, MQTT, signed JSON, store-and-forward.

What it models, from the seeds (002 parts 01-02):

- **Shopping sessions on the PRD's state machine**: a customer takes a charged
  cart from the dock (idle), shops as a guest or identified by a loyalty tap or
  the app (and may tap the loyalty card halfway), scans items (active), may
  leave the cart asleep for a while (paused) and come back or not, and ends
  paid (complete), walked away from (abandoned) or cancelled by staff (voided).
  A cart whose battery hits the cliff mid-shop ends its session for a swap and
  the customer carries on with another cart (``continued_from``). Now and then a
  cart is left in the car park and pings hourly over LTE-M until staff fetch it.
- **Health** every 60 s while a session is active and every 5 minutes otherwise
  (hourly from the car park); **faults** (scanner jams, weight mismatches,
  failed payments, the battery cliff); a **boot** record at power-up.
- **Links**: store Wi-Fi first, LTE-M when Wi-Fi is gone, back to Wi-Fi when it
  returns. With both down the cart keeps working: every record goes to flash
  first and leaves it only when the broker acknowledges it (store-and-forward).
  On reconnect the cart sends its hello, then republishes its flash in order;
  the MQTT client resends what was unacknowledged when the link died (DUP), so
  some records reach the broker twice, as the seeds warn.
- **Reject notices** on its rejects topic: ``rate_limited`` puts the record
  back in flash to send later; any other code is an anomaly for the report.
- **Firmware updates** (when the scenario has rollouts, ``Cart.ota``): the cart's
  ``CartUpdater`` (``tether.sim.cart_update``) takes an update job on the
  commands topic, fetches the image over HTTPS with the cart's client
  certificate in byte ranges (a dropped link resumes at the first byte not yet
  kept), verifies and commits it, and the cart reboots; ``ota-status`` records
  and the ``boot`` attestation go out like any record, and the slot is marked
  good once the broker acknowledges the attestation. An image's declared defects
  play out: a crash at boot (the boot counter returns the cart to its old slot),
  a crash some hours after boot (the slot was marked good, so nothing rolls
  back: the cart crashes at every boot and stays dark until someone
  power-cycles it), a raised fault rate. A job that arrives while a customer is
  shopping waits until the cart is docked.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tether.devices.secure_element import SecureElement
from tether.firmware.jobs import Job
from tether.sim.cart_update import CartUpdater
from tether.sim.engine import Engine
from tether.sim.ledger import Ledger
from tether.sim.mqtt import MqttLink
from tether.sim.ota.agent import UpdateAgent
from tether.sim.ota.device import OtaDevice
from tether.sim.ota.fetch import Fetcher
from tether.sim.stores import Item, Store
from tether.sim.wire import Record, hello_body, json_record

MINUTE, HOUR = 60.0, 3600.0
ACTIVE_HEALTH_S, IDLE_HEALTH_S, CAR_PARK_HEALTH_S = 60.0, 300.0, 3600.0
# Battery percent an hour, by what the cart is doing (negative: charging at the dock).
DRAW = {"active": 5.5, "paused": 2.0, "idle": 2.5, "docked": -40.0, "car-park": 1.5, "off": 0.0}
BATTERY_CLIFF = 8.0
SENT_MEMORY = 4000  # acknowledged records a cart keeps in case one comes back rate_limited
FINAL = ("complete", "abandoned", "voided")


@dataclass
class Shop:
    """One customer's trip with this cart."""

    id: str
    mode: str  # guest | identified
    scans_left: int
    items: int = 0
    total_cents: int = 0
    scanned: list[Item] = field(default_factory=list)
    token: int = 0  # tells a step scheduled for an earlier state of the trip to stand down


class Cart:
    def __init__(
        self,
        serial: str,
        element: SecureElement,
        rng: random.Random,
        store: Store,
        engine: Engine,
        ledger: Ledger,
        fw: str,
        hw: str,
        capabilities: list[str],
        end: float,
    ) -> None:
        self.serial = serial
        self.rng = rng
        self.store = store
        # What the tray's weight platform reads per true gram: 1.0 when calibrated.
        self.weight_scale = 1.0
        self.engine = engine
        self.ledger = ledger
        self.fw, self.hw, self.capabilities = fw, hw, capabilities
        self.end = end
        self._sign = element.sign
        self.topic = f"tether/v1/{serial}/records"
        self.link: MqttLink | None = None
        self.next_seq = 1
        self.flash: OrderedDict[int, Record] = OrderedDict()  # made, not yet acknowledged
        self.sent: OrderedDict[int, Record] = OrderedDict()
        self.tickets: dict[int, int] = {}  # publish ticket -> seq
        self.agreed: list[str] = []
        self.state = "off"
        self.shop: Shop | None = None
        self.sessions = 0
        self.battery = rng.uniform(55.0, 100.0)
        self._battery_at = 0.0
        self.booted_at = 0.0
        self._health_token = 0
        self._health_due: float | None = None
        # network: which link the cart means to use, and where its connection stands
        self.via: str | None = None
        self.net = "offline"  # offline | waiting | connecting | up | leaving
        self._net_token = 0
        self.wifi_ok = True
        self.in_car_park = False
        # Set by the store: where a trip goes on after a battery swap (old id, mode, scans left).
        self.continue_elsewhere: Callable[[str, str, int], None] | None = None
        self.idle_health = IDLE_HEALTH_S
        self.fault_multiplier = 1.0  # the running image's, on this cart's revision
        # The update side (its ota, agent and fetcher None in scenarios without rollouts).
        self.ota_rng = random.Random(f"{serial}:ota")
        self.updater = CartUpdater(self, self.ota_rng)
        self.crash_dark = (12 * HOUR, 24 * HOUR)
        self._crash_token = 0
        self.dark = False  # crashed and not yet power-cycled
        ledger.device(serial, "retail-cart", store.name)
        store.listeners.append(self.reevaluate)

    # the update side, as the world wires it
    @property
    def ota(self) -> OtaDevice | None:
        return self.updater.ota

    @ota.setter
    def ota(self, ota: OtaDevice | None) -> None:
        self.updater.ota = ota

    @property
    def agent(self) -> UpdateAgent | None:
        return self.updater.agent

    @agent.setter
    def agent(self, agent: UpdateAgent | None) -> None:
        self.updater.agent = agent

    @property
    def fetcher(self) -> Fetcher | None:
        return self.updater.fetcher

    @fetcher.setter
    def fetcher(self, fetcher: Fetcher | None) -> None:
        self.updater.fetcher = fetcher

    @property
    def transfer_drops(self) -> float:
        """The chance a download's link drops on the way."""
        return self.updater.transfer_drops

    @transfer_drops.setter
    def transfer_drops(self, chance: float) -> None:
        self.updater.transfer_drops = chance

    @property
    def job(self) -> Job | None:
        """The update job under way, if any."""
        return self.updater.job

    # records
    def _make(self, type: str, body: dict[str, Any]) -> Record:
        now = self.engine.now
        seq = self.next_seq
        self.next_seq += 1
        record = json_record(self.serial, seq, int(now * 1000), type, body, self._sign, now)
        self.flash[seq] = record
        self.ledger.made(self.serial, record)
        self.ledger.count(f"cart.{type}")
        if self.net != "up":
            self.ledger.count("cart.stored_offline")
        elif type != "hello":
            self._publish(record)
        return record

    def report(self, type: str, body: dict[str, Any]) -> None:
        """A record made by the update side (``ota-status``), sent like any other."""
        self._make(type, body)

    def _publish(self, record: Record) -> None:
        assert self.link is not None and record.seq is not None
        ticket = self.link.publish(self.topic, record.data)
        self.tickets[ticket] = record.seq
        self.ledger.count("mqtt.publishes")

    # battery
    def _settle_battery(self) -> None:
        now = self.engine.now
        mode = "car-park" if self.in_car_park else self.state
        self.battery -= DRAW[mode] * (now - self._battery_at) / HOUR
        self.battery = max(0.0, min(100.0, self.battery))
        self._battery_at = now

    # power
    def power_on(self) -> None:
        now = self.engine.now
        self._battery_at = now
        self.booted_at = now
        self.state = "docked"
        self.dark = False
        self.ledger.count("cart.boots")
        if self.ota is None:
            body = {"fw": self.fw, "slot": "a", "previous_fw": None, "rolled_back": False}
            self._make("boot", body)
        else:
            self.updater.boot()
        self.reevaluate()
        self._schedule_health()

    def crash_after(self, seconds: float | None) -> None:
        """A new image is up: it crashes ``seconds`` from now (None: it does not)."""
        self._crash_token += 1
        if seconds is not None:
            token = self._crash_token
            self.engine.after(seconds, lambda: self._crash(token))

    def _power_off(self, clean: bool = True) -> None:
        self.state = "off"
        self._health_token += 1
        self._health_due = None
        self.via = None
        self._net_token += 1
        self._crash_token += 1
        self.updater.powered_off()
        if self.net == "up":
            self.net = "leaving"
            assert self.link is not None
            if clean:
                self.link.close()
            else:
                self.link.drop()
        elif self.net == "waiting":
            self.net = "offline"

    def _crash(self, token: int) -> None:
        """The running image crashed after its slot was marked good: nothing rolls it back.

        The watchdog resets the cart, and the image crashes again at every boot before
        its radio is up: the cart is dark until someone power-cycles it.
        """
        if token != self._crash_token or self.state == "off":
            return
        self.ledger.count("ota.crashes_after_boot")
        if self.shop is not None:
            self._end("abandoned", reason="firmware-crash")
        self._power_off(clean=False)
        self.dark = True
        self.engine.after(self.ota_rng.uniform(*self.crash_dark), self.power_cycle)

    def power_cycle(self) -> None:
        """Someone switched a dark cart off and on again."""
        if self.dark:
            self.ledger.count("ota.power_cycles")
            self.power_on()

    # health
    def _schedule_health(self, reported: bool = False) -> None:
        """The next health report: sooner if the new state asks for it, never later."""
        if self.in_car_park:
            every = CAR_PARK_HEALTH_S
        elif self.state == "active":
            every = ACTIVE_HEALTH_S
        else:
            every = self.idle_health
        due = self.engine.now + every
        if not reported and self._health_due is not None and self._health_due <= due:
            return
        self._health_token += 1
        token = self._health_token
        self._health_due = due
        self.engine.at(due, lambda: self._health(token))

    def _health(self, token: int) -> None:
        if token != self._health_token or self.state == "off":
            return
        self._health_due = None
        self._settle_battery()
        up = self.net == "up" and self.via is not None
        body: dict[str, Any] = {
            "battery_pct": round(self.battery),
            "link": self.via if up else "none",
            "uptime_s": int(self.engine.now - self.booted_at),
            "queue_depth": len(self.flash),
            "state": "idle" if self.in_car_park else self.state,
        }
        if up:
            mean = -58.0 if self.via == "wifi" else -97.0
            body["rssi_dbm"] = max(-130, min(0, round(self.rng.gauss(mean, 6))))
        if self.in_car_park:
            body["zone"] = "car-park"
        self._make("health", body)
        if self.engine.now < self.end or self.shop is not None or self.in_car_park:
            self._schedule_health(reported=True)

    # the links
    def _wanted(self) -> str | None:
        if self.state == "off":
            return None
        if not self.in_car_park and self.store.wifi_up and self.wifi_ok:
            return "wifi"
        return "lte-m" if self.store.lte_up else None

    def _link_alive(self, via: str | None) -> bool:
        if via == "wifi":
            return self.store.wifi_up and self.wifi_ok and not self.in_car_park
        return via == "lte-m" and self.store.lte_up

    def reevaluate(self) -> None:
        """A link came or went: move to the best one there is."""
        want = self._wanted()
        old, self.via = self.via, want
        if self.net == "up":
            if want != old or want is None:
                self._leave(old)
        elif self.net in ("waiting", "offline"):
            if want == old and self.net == "waiting":
                return
            self._net_token += 1
            self.net = "offline"
            if want is not None:
                self._connect_after(want)
        # connecting or leaving: on_up and on_down look again

    def _leave(self, old: str | None) -> None:
        assert self.link is not None
        self.net = "leaving"
        if old is None or self._link_alive(old):
            self.link.close()  # back to Wi-Fi, or powering down: a clean goodbye
        else:
            self.link.drop()  # the radio lost its link: no goodbye
            self.ledger.count(f"cart.links_lost.{old}")

    def _connect_after(self, via: str, delay: float | None = None) -> None:
        if delay is None:  # Wi-Fi association, or an LTE-M attach
            delay = self.rng.uniform(2, 6) if via == "wifi" else self.rng.uniform(15, 45)
        self._net_token += 1
        token = self._net_token
        self.net = "waiting"
        self.engine.after(delay, lambda: self._connect(token))

    def _connect(self, token: int) -> None:
        if token != self._net_token or self.net != "waiting":
            return
        if self.via is None:
            self.net = "offline"
            return
        assert self.link is not None
        self.net = "connecting"
        self.link.connect()

    def on_up(self) -> None:
        self.net = "up"
        want = self._wanted()
        if self.via is None or want != self.via:
            old, self.via = self.via, want
            self._leave(old)
            return
        self.ledger.count(f"cart.connects.{self.via}")
        lowest = min(self.flash, default=self.next_seq)
        anchors = self.agent.trust_anchors if self.agent is not None else None
        hello = self._make(
            "hello", hello_body(self.fw, self.hw, self.capabilities, lowest, anchors)
        )
        self._publish(hello)
        backlog = [r for seq, r in self.flash.items() if seq != hello.seq]
        self.ledger.count("cart.republished", len(backlog))
        for record in backlog:
            self._publish(record)
        self.updater.step()

    def on_down(self, reason: str) -> None:
        requested = self.net == "leaving"
        self.net = "offline"
        # Published, not acknowledged: the MQTT client sends these again (DUP) on reconnect,
        # and the cart republishes them from flash too.
        self.ledger.count("mqtt.unacknowledged_at_link_loss", len(self.tickets))
        if not requested:
            self.ledger.count("cart.connections_lost")
        if self.via is not None:
            delay = None if requested else self.rng.uniform(2, 10)
            self._connect_after(self.via, delay)

    def on_connect_failed(self, reason: str) -> None:
        self.ledger.count("cart.connect_failures")
        self.net = "offline"
        if self.via is not None:
            self._connect_after(self.via, self.rng.uniform(5, 30))

    def on_ack(self, ticket: int) -> None:
        seq = self.tickets.pop(ticket, None)
        if seq is None:
            return
        record = self.flash.pop(seq, None)
        if record is None:
            self.ledger.count("mqtt.acks_for_copies")  # a copy of something acknowledged before
            return
        self.ledger.delivered(self.serial, record.key, self.engine.now)
        self.updater.acknowledged(seq)
        self.sent[seq] = record
        while len(self.sent) > SENT_MEMORY:
            self.sent.popitem(last=False)

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            self.ledger.count("cart.unreadable_messages")
            return
        if not isinstance(message, dict):
            return
        if topic.endswith("/commands") and message.get("type") == "capabilities":
            self.agreed = [c for c in message.get("use", []) if isinstance(c, str)]
            self.ledger.count("cart.capability_answers")
        elif topic.endswith("/commands") and message.get("type") == "ota":
            self.updater.take(message)
        elif topic.endswith("/rejects"):
            seq, code = message.get("seq"), str(message.get("code"))
            if code == "rate_limited" and isinstance(seq, int) and seq in self.sent:
                record = self.sent.pop(seq)
                self.flash[seq] = record
                self.flash.move_to_end(seq, last=False)
                self.ledger.count("cart.rate_limited")
                if self.net == "up":
                    self._publish(record)
            else:
                self.ledger.refused(self.serial, str(seq), code)

    # a flapping Wi-Fi of this cart alone
    def wifi_flap(self, seconds: float) -> None:
        self.wifi_ok = False
        self.ledger.count("cart.wifi_flaps")
        self.reevaluate()
        self.engine.after(seconds, self._wifi_back)

    def _wifi_back(self) -> None:
        self.wifi_ok = True
        self.reevaluate()

    # shopping
    @property
    def available(self) -> bool:
        """Docked and charged enough for a customer."""
        if self.state != "docked" or self.in_car_park:
            return False
        self._settle_battery()
        return self.battery >= 30

    def start_session(self, mode: str, scans: int, continued_from: str | None = None) -> str:
        self._settle_battery()
        self.sessions += 1
        sid = f"s-{self.serial[-8:]}-{self.sessions:04d}-{self.rng.getrandbits(24):06x}"
        self.shop = Shop(sid, mode, scans)
        self.state = "active"
        body: dict[str, Any] = {"session_id": sid, "store": self.store.name, "mode": mode}
        if continued_from is not None:
            body["continued_from"] = continued_from
        self._make("session-start", body)
        if mode == "identified" and continued_from is None:
            self._identify("app" if self.rng.random() < 0.2 else "loyalty")
        self._schedule_health()
        self._next_scan()
        return sid

    def _identify(self, method: str) -> None:
        assert self.shop is not None
        body: dict[str, Any] = {"session_id": self.shop.id, "method": method}
        if method == "loyalty":
            body["loyalty_token"] = f"lt-{self.rng.getrandbits(64):016x}"
        self.shop.mode = "identified"
        self._make("identify", body)

    def _later(self, delay: float, step: Callable[[], None]) -> None:
        """Run a step of the trip after ``delay`` unless the trip moved on meanwhile."""
        assert self.shop is not None
        shop, token = self.shop, self.shop.token

        def run() -> None:
            if self.shop is shop and shop.token == token:
                step()

        self.engine.after(delay, run)

    def _next_scan(self) -> None:
        self._later(self.rng.expovariate(1 / 35.0) + 3.0, self._scan)

    def _scan(self) -> None:
        shop = self.shop
        assert shop is not None
        self._settle_battery()
        if self.battery < BATTERY_CLIFF:
            self._battery_cliff()
            return
        rng = self.rng
        roll = rng.random()
        if roll < 0.03 and shop.scanned:
            item, qty = shop.scanned.pop(rng.randrange(len(shop.scanned))), -1
        else:
            item = rng.choice(self.store.items)
            qty = 1 if roll < 0.91 else rng.randint(2, 4)
            shop.scanned.append(item)
        weight = None
        if item.weight_g is not None and qty > 0:
            weight = max(0, round(item.weight_g * qty * self.weight_scale + rng.gauss(0, 12)))
            if self.weight_scale != 1.0:
                self.ledger.count("cart.scans_miscalibrated")
            if rng.random() < 0.01 * self.fault_multiplier:
                weight += rng.randint(200, 900)  # something unscanned on the tray
                self._fault(
                    "weight_mismatch", "info", f"tray heavier than {item.gtin} by ~{weight}"
                )
        body = {"session_id": shop.id, "gtin": item.gtin, "qty": qty, "weight_g": weight}
        body["price_cents"] = item.price_cents
        self._make("scan", body)
        shop.items = max(0, shop.items + qty)
        shop.total_cents = max(0, shop.total_cents + qty * item.price_cents)
        if rng.random() < 0.003 * self.fault_multiplier:
            self._fault("scanner_jam", "warning", "imager did not decode for 5 s; cleared")
        shop.scans_left -= 1
        if shop.mode == "guest" and rng.random() < 0.01:
            self._identify("loyalty")  # remembered the card halfway: linked retroactively
        if shop.scans_left <= 0:
            self._finish()
        elif rng.random() < 0.004:
            self._pause()
        else:
            self._next_scan()

    def _fault(self, code: str, severity: str, detail: str) -> None:
        self._make("fault", {"code": code, "severity": severity, "detail": detail})

    def _pause(self) -> None:
        """Parked at customer service, asleep with the session in flash."""
        self._settle_battery()
        self.state = "paused"
        self.ledger.count("cart.pauses")
        self._schedule_health()
        if self.rng.random() < 0.2:
            self._later(30 * MINUTE, lambda: self._end("abandoned"))
        else:
            self._later(self.rng.uniform(3, 15) * MINUTE, self._resume)

    def _resume(self) -> None:
        self._settle_battery()
        self.state = "active"
        self._schedule_health()
        self._next_scan()

    def _finish(self) -> None:
        roll = self.rng.random()
        if roll < 0.03:
            self._later(self.rng.uniform(1, 5) * MINUTE, lambda: self._end("voided"))
        elif roll < 0.07:
            self._later(20 * MINUTE, lambda: self._end("abandoned"))
        else:
            self._later(self.rng.uniform(1, 4) * MINUTE, self._checkout)

    def _checkout(self) -> None:
        if self.net == "up" and self.rng.random() < 0.02:
            self._fault("payment_failed", "warning", "terminal declined the hand-off; retrying")
            self._later(30.0, self._checkout)
            return
        self._end("complete")

    def _end(self, outcome: str, **extra: Any) -> None:
        shop = self.shop
        assert shop is not None and outcome in FINAL
        self._settle_battery()
        body: dict[str, Any] = {
            "session_id": shop.id,
            "outcome": outcome,
            "items": shop.items,
            "total_cents": shop.total_cents,
        }
        if outcome == "complete":
            if self.net == "up":
                body["payment_token"] = f"pt-{self.rng.getrandbits(96):024x}"
            else:
                body["payment"] = "terminal"  # offline: the customer pays at the store's terminal
                self.ledger.count("cart.paid_at_terminal")
        body |= extra
        self._make("session-end", body)
        self.ledger.count(f"cart.sessions.{outcome}")
        shop.token += 1
        self.shop = None
        self.state = "idle"
        self._schedule_health()
        if outcome == "complete" and self.rng.random() < 0.01:
            self._car_park()
        elif "reason" not in extra:
            self.engine.after(self.rng.uniform(1, 10) * MINUTE, self._dock)

    def _dock(self) -> None:
        if self.state == "idle" and self.shop is None:
            self._settle_battery()
            self.state = "docked"
            self._schedule_health()
            self.updater.step()

    def _car_park(self) -> None:
        """Wheeled out to a car and left: out of Wi-Fi, hourly pings over LTE-M."""
        self.in_car_park = True
        self.ledger.count("cart.left_in_car_park")
        self.reevaluate()
        self._schedule_health()
        self.engine.after(self.rng.uniform(1, 3) * HOUR, self._fetched)

    def _fetched(self) -> None:
        self._settle_battery()
        self.in_car_park = False
        self.state = "docked"
        self.reevaluate()
        self._schedule_health()

    def _battery_cliff(self) -> None:
        """Too little charge to go on: end here for a swap; the trip continues on another cart."""
        shop = self.shop
        assert shop is not None
        self._fault("battery_cliff", "critical", f"battery at {self.battery:.0f}%; swap carts")
        left, mode, old = shop.scans_left, shop.mode, shop.id
        self._end("abandoned", reason="battery-swap")
        self.ledger.count("cart.battery_swaps")
        if self.continue_elsewhere is not None:
            self.continue_elsewhere(old, mode, left)
        self.engine.after(2 * MINUTE, self._to_charger)

    def _to_charger(self) -> None:
        """Staff take it to the dock: it powers down, charges, and boots again."""
        self._power_off()
        self.engine.after(self.rng.uniform(1, 2) * HOUR, self._recharged)

    def _recharged(self) -> None:
        self.battery = 100.0
        self.power_on()

    # the end of the run
    @property
    def quiet(self) -> bool:
        """No trip or update under way, nothing in flash, nothing waiting for an acknowledgement."""
        if self.updater.job is not None and self.state != "off":
            return False  # an update under way
        return self.shop is None and not self.flash and not self.in_car_park
