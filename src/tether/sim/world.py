"""The simulated world of one scenario: its fleet, built the way a factory would, and its day.

``World.build`` provisions every device through the platform's provisioner (a
key made in each simulated secure element, a CSR, a certificate), signs up the
households' accounts through the HTTPS door, gives MQTT devices their TLS
files, and lives the in-service brushes' past. ``World.begin`` schedules the
run: routines, customers, job-site work, store outages and flaky links.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from tether.platform import Platform
from tether.sim.ble import LinkModel
from tether.sim.brush import Brush, BrushHabits
from tether.sim.cart import Cart
from tether.sim.engine import Engine
from tether.sim.firmware import FleetFirmware
from tether.sim.gateway import Gateway
from tether.sim.homes import HOUR, Household, age, local_midnight
from tether.sim.ledger import Ledger
from tether.sim.mqtt import MqttHub, TlsIdentity
from tether.sim.ota.agent import UpdateAgent
from tether.sim.ota.fetch import Fetcher
from tether.sim.ota.phone import RelayLink
from tether.sim.phone import Phone, PhoneHabits
from tether.sim.scenario import Scenario, StoreSpec
from tether.sim.stores import Store, catalogue
from tether.sim.tool import Tool

K = TypeVar("K")
BRUSH, CART, TOOL = "oral-care-brush", "retail-cart", "power-tool"


def pick(rng: random.Random, weights: dict[K, float]) -> K:
    choices = list(weights)
    return rng.choices(choices, [weights[c] for c in choices])[0]


def _around(rng: random.Random, mean: float) -> float:
    """A per-person rate around ``mean``: most near it, a few far above."""
    return min(1.0, rng.expovariate(1.0 / mean)) if mean > 0 else 0.0


class World:
    def __init__(
        self,
        scenario: Scenario,
        engine: Engine,
        ledger: Ledger,
        platform: Platform,
        gateway: Gateway,
        hub: MqttHub | None,
        devices_dir: Path,
        start: float,
        on_progress: Callable[[str, int, int], None] | None = None,
        firmware: FleetFirmware | None = None,
        door: tuple[str, int, str] | None = None,
    ) -> None:
        self.scenario = scenario
        # Devices carry an update side only when the scenario has rollouts.
        self.firmware = firmware
        self.door = door  # (host, port, service CA) of the HTTPS door, for firmware fetches
        self.engine = engine
        self.ledger = ledger
        self.platform = platform
        self.gateway = gateway
        self.hub = hub
        self.devices_dir = devices_dir
        self.start = start
        self.end = start + scenario.duration
        self.rng = random.Random(f"{scenario.seed}:world")
        self.on_progress = on_progress or (lambda _stage, _done, _total: None)
        self.households: list[Household] = []
        self.stores: list[Store] = []
        self.carts: list[Cart] = []
        self.tools: list[Tool] = []
        if hub is not None:
            hub.on_links = self._links_up

    def _links_up(self, up: int) -> None:
        """MQTT devices connected at once, now and at most (the load mode's honest count)."""
        counts = self.ledger.counts
        counts["mqtt.connected"] = up
        counts["mqtt.connected_peak"] = max(counts["mqtt.connected_peak"], up)

    def _rng(self, kind: str, index: int) -> random.Random:
        return random.Random(f"{self.scenario.seed}:{kind}:{index}")

    # building
    def _provision(self, device_class: str, hw: str, count: int) -> list[str]:
        if count == 0:
            return []
        done = [0]

        def advanced(n: int) -> None:  # the provisioner reports each batch
            done[0] += n
            self.on_progress(f"provisioning {device_class}", done[0], count)

        made = self.platform.provisioner.provision(
            self.platform.secure_elements,
            self.scenario.tenant,
            device_class,
            hw,
            count,
            on_progress=advanced,
        )
        return [d.serial for d in made]

    def _tls(self, serial: str) -> TlsIdentity:
        self.devices_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert = self.devices_dir / f"{serial}.pem"
        cert.write_text(self.platform.secure_elements.certificate(serial))
        key = self.platform.secure_elements.open(serial).export_key_for_tls(
            self.devices_dir / f"{serial}.key"
        )
        return TlsIdentity(cert, key)

    def build(self, operator_token: str) -> None:
        before = Counter(self.ledger.counts)
        self._build_brushes(operator_token)
        history = self.ledger.counts - before
        self.ledger.counts = before + Counter({f"history.{k}": v for k, v in history.items()})
        for spec in self.scenario.fleet.carts.stores:
            self._build_store(spec)
        self._miscalibrate()
        self._build_tools()

    def _miscalibrate(self) -> None:
        """A batch of weight platforms that read wrong: their records stay genuine and signed."""
        rng = random.Random(f"{self.scenario.seed}:miscalibrated")
        for bad in self.scenario.adversaries.miscalibrated:
            carts = [c for c in self.carts if c.store.name == bad.store]
            for cart in rng.sample(carts, bad.carts):
                cart.weight_scale = round(rng.uniform(*bad.scale), 3)
                self.ledger.books[cart.serial].miscalibrated = cart.weight_scale

    def _build_brushes(self, operator_token: str) -> None:
        spec = self.scenario.fleet.brushes
        phones = self.scenario.networks.phones
        serials = self._provision(BRUSH, spec.hw, spec.count)
        elements = self.platform.secure_elements
        at, index = 0, 0
        while at < len(serials):
            rng = self._rng("household", index)
            size = min(pick(rng, spec.household_size), len(serials) - at)
            members, at = serials[at : at + size], at + size
            new = rng.random() < spec.new
            _, token = self.gateway.create_account(operator_token, self.scenario.tenant)
            habits = PhoneHabits(
                near=phones.near,
                app_open=_around(rng, phones.app_open),
                elsewhere=_around(rng, phones.elsewhere),
                online=max(0.0, min(1.0, rng.gauss(phones.online, 0.08))),
                response_lost=phones.response_lost,
                forgets=phones.forgets,
                cursor_lost=phones.cursor_lost,
            )
            link = LinkModel(
                payload=pick(rng, phones.payload),
                loss=phones.notification_loss,
                drop=phones.drop_mid_drain,
            )
            phone = Phone(f"phone-{index}", rng, habits, link, self.gateway, self.ledger, token)
            if self.firmware is not None:
                assert self.door is not None
                host, port, ca = self.door
                phone.fetcher = Fetcher(host, port, ca, token=token)
                phone.ota_link = RelayLink(payload=self.scenario.rollouts.ble_payload)
                phone.ota_window = self.scenario.rollouts.ble_window
            brushes = []
            for serial in members:
                brng = self._rng("brush", len(self.ledger.books))
                person = BrushHabits(
                    morning=spec.morning,
                    evening=spec.evening,
                    midday=_around(brng, spec.midday),
                    duration_s=max(30.0, min(300.0, brng.gauss(spec.duration, 20))),
                    charging=pick(brng, spec.charging),
                    off_brand_heads=brng.random() < spec.off_brand_heads,
                )
                start = self.start if new else self.start - brng.uniform(*spec.in_service)
                brush = Brush(
                    serial,
                    elements.open(serial),
                    brng,
                    person,
                    spec.ring_slots,
                    self.ledger,
                    start,
                    spec.fw,
                    spec.hw,
                    list(spec.capabilities),
                )
                if self.firmware is not None:
                    brush.ota = self.firmware.device_for(BRUSH, spec.hw)
                    brush.agent = UpdateAgent(brush.ota, [self.firmware.anchor], brush.report)
                    brush.ota.power_on()
                if not new:
                    days = (self.start - start) / 86400
                    age(brush, brng, self.start, days, self.scenario.utc_offset)
                    brush.bonded_phone = phone.name  # paired over BLE long ago
                brushes.append(brush)
            self.households.append(
                Household(
                    f"home-{index}",
                    phone,
                    brushes,
                    self.engine,
                    rng,
                    self.scenario.utc_offset,
                    self.end,
                    new,
                )
            )
            index += 1
            self.on_progress("households", at, len(serials))

    def _build_store(self, spec: StoreSpec) -> None:
        assert self.hub is not None
        carts_spec = self.scenario.fleet.carts
        index = len(self.stores)
        store = Store(
            spec.name,
            spec.hours[0],
            spec.hours[1],
            spec.customers_per_hour,
            catalogue(self._rng("catalogue", index)),
        )
        self.stores.append(store)
        elements = self.platform.secure_elements
        hw = spec.hw or carts_spec.hw
        for serial in self._provision(CART, hw, spec.carts):
            cart = Cart(
                serial,
                elements.open(serial),
                self._rng("cart", len(self.ledger.books)),
                store,
                self.engine,
                self.ledger,
                carts_spec.fw,
                hw,
                list(carts_spec.capabilities),
                self.end,
            )
            cart.idle_health = carts_spec.idle_health
            tls = self._tls(serial)
            if self.firmware is not None:
                self._carry_updates(cart, tls)
            cart.link = self.hub.link(
                serial,
                tls,
                cart,
                [f"tether/v1/{serial}/commands", f"tether/v1/{serial}/rejects"],
                clean_session=False,
            )
            cart.continue_elsewhere = partial(self._continue, store)
            self.carts.append(cart)

    def _carry_updates(self, cart: Cart, tls: TlsIdentity) -> None:
        """The cart's A/B flash, its update agent, and its HTTPS client for images."""
        assert self.firmware is not None and self.door is not None
        rollouts = self.scenario.rollouts
        cart.ota = self.firmware.device_for(CART, cart.hw)
        cart.agent = UpdateAgent(cart.ota, [self.firmware.anchor], cart.report)
        host, port, ca = self.door
        cart.fetcher = Fetcher(host, port, ca, cert=(tls.cert, tls.key))
        cart.crash_dark = rollouts.crash_dark
        cart.transfer_drops = rollouts.transfer_drops

    def _build_tools(self) -> None:
        for site in self.scenario.fleet.tools.sites:
            assert self.hub is not None
            for serial in self._provision(TOOL, "A", site.tools):
                tool = Tool(
                    serial,
                    self._rng("tool", len(self.ledger.books)),
                    site.name,
                    self.engine,
                    self.ledger,
                    site.hours,
                    self.scenario.utc_offset,
                    self.end,
                )
                tool.link = self.hub.link(serial, self._tls(serial), tool, [], clean_session=True)
                self.tools.append(tool)

    # the run
    def begin(self) -> None:
        now = self.engine.now
        for household in self.households:
            household.begin(now)
        for cart in self.carts:
            self.engine.at(now + self.rng.uniform(0, 60), cart.power_on)
        for store in self.stores:
            self._next_customer(store, now)
        for tool in self.tools:
            self.engine.at(now + self.rng.uniform(0, 60), tool.begin)
        self._plan_flaps(now)
        for outage in self.scenario.networks.stores.outages:
            store = next(s for s in self.stores if s.name == outage.store)
            wifi, lte = "wifi" in outage.links, "lte-m" in outage.links
            begins = now + outage.at
            self.engine.at(begins, partial(self._outage, store, wifi, lte))
            self.engine.at(begins + outage.duration, partial(self._restore, store))

    def _local_hour(self, t: float) -> float:
        return (t - local_midnight(t, self.scenario.utc_offset)) / HOUR

    def _next_customer(self, store: Store, now: float) -> None:
        hour = self._local_hour(now)
        if store.open_at(hour) and store.customers_per_hour > 0:
            gap = self.rng.expovariate(store.flow(hour) / HOUR)
        else:  # closed: the first customer comes once it opens
            midnight = local_midnight(now, self.scenario.utc_offset)
            opens = midnight + store.opens_h * HOUR
            gap = (opens if opens > now else opens + 86400) - now + self.rng.uniform(0, 300)
        at = now + gap
        if at < self.end:
            self.engine.at(at, lambda: self._customer(store))

    def _customer(self, store: Store) -> None:
        now = self.engine.now
        if store.open_at(self._local_hour(now)):
            free = [c for c in self.carts if c.store is store and c.available]
            if free:
                cart = self.rng.choice(free)
                mode = "identified" if self.rng.random() < 0.35 else "guest"
                cart.start_session(mode, max(1, round(self.rng.gauss(28, 14))))
                self.ledger.count("store.customers")
            else:
                self.ledger.count("store.customers_without_cart")
        self._next_customer(store, now)

    def _continue(self, store: Store, old: str, mode: str, left: int) -> None:
        """A swap: the customer takes another cart and the session goes on there."""
        free = [c for c in self.carts if c.store is store and c.available]
        if not free:
            self.ledger.count("store.swaps_to_till")
            return
        self.rng.choice(free).start_session(mode, max(1, left), continued_from=old)

    def _plan_flaps(self, now: float) -> None:
        rate = self.scenario.networks.stores.wifi_flaps_per_hour
        if rate > 0:
            for cart in self.carts:
                t = now + self.rng.expovariate(rate / HOUR)
                while t < self.end:
                    seconds = self.rng.uniform(5, 90)
                    self.engine.at(t, partial(cart.wifi_flap, seconds))
                    t += seconds + self.rng.expovariate(rate / HOUR)
        sites = self.scenario.networks.sites
        if sites.drops_per_day > 0:
            for tool in self.tools:
                t = now + self.rng.expovariate(sites.drops_per_day / 86400)
                while t < self.end:
                    seconds = self.rng.uniform(*sites.drop_for)
                    self.engine.at(t, partial(tool.coverage_lost, seconds))
                    t += seconds + self.rng.expovariate(sites.drops_per_day / 86400)

    def _outage(self, store: Store, wifi: bool, lte: bool) -> None:
        self.ledger.count("store.outages")
        store.set_links(wifi=False if wifi else None, lte=False if lte else None)

    def _restore(self, store: Store) -> None:
        store.set_links(wifi=True, lte=True)

    def restore_networks(self) -> None:
        """The run is over: every outage ends, every link comes back, dark carts are restarted."""
        for store in self.stores:
            if not (store.wifi_up and store.lte_up):
                self._restore(store)
        for cart in self.carts:
            cart.power_cycle()

    @property
    def quiet(self) -> bool:
        """Nothing under way: no trip, nothing waiting in a device, nothing unacknowledged."""
        if any(not c.quiet for c in self.carts) or any(not t.quiet for t in self.tools):
            return False
        return self.hub is None or self.hub.hold() is None

    def undelivered(self) -> dict[str, int]:
        """Records each MQTT device still held for sending."""
        for cart in self.carts:
            if cart.fetcher is not None:
                cart.fetcher.close()
        out = {c.serial: len(c.flash) for c in self.carts if c.flash}
        out |= {t.serial: len(t.queue) + len(t.tickets) for t in self.tools if not t.quiet}
        return out
