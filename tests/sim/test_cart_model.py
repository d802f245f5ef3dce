"""The cart model over a link that stands in for the broker: sessions, health, store-and-forward."""

from __future__ import annotations

import itertools
import json
import random

from cryptography.hazmat.primitives.asymmetric import ec

from tether.devices.secure_element import SecureElement
from tether.sim.cart import Cart
from tether.sim.clock import SimClock
from tether.sim.engine import Engine
from tether.sim.ledger import Ledger
from tether.sim.stores import Store, catalogue, gtin13

T0 = 1_800_000_000.0  # a Friday, 10:40 UTC
KEY = ec.generate_private_key(ec.SECP256R1())


class Link:
    """Acknowledges each publish a moment later, while up; a drop loses what was in flight."""

    def __init__(self, engine: Engine, cart: Cart, store: Store) -> None:
        self.engine, self.cart, self.store = engine, cart, store
        self.up = False
        self.epoch = 0
        self.published: list[tuple[float, int, str]] = []  # (time, seq, type)
        self.tickets = 0

    def connect(self) -> None:
        def done() -> None:
            self.up = True
            self.cart.on_up()

        self.engine.after(0.5, done)

    def publish(self, topic: str, payload: bytes) -> int:
        self.tickets += 1
        ticket, epoch = self.tickets, self.epoch
        envelope = json.loads(payload[:-64])
        self.published.append((self.engine.now, envelope["seq"], envelope["type"]))

        def ack() -> None:
            if self.up and self.epoch == epoch:
                self.cart.on_ack(ticket)

        self.engine.after(0.2, ack)
        return ticket

    def _down(self) -> None:
        self.up = False
        self.epoch += 1
        self.engine.after(0.0, lambda: self.cart.on_down("gone"))

    drop = close = _down


def test_a_store_outage_keeps_every_record_in_flash_and_republishes_it_in_order() -> None:
    clock = SimClock(T0)
    engine = Engine(clock)
    ledger = Ledger()
    store = Store("north", 7.0, 22.0, 0.0, catalogue(random.Random(1)))
    end = T0 + 3 * 3600
    cart = Cart(
        "RC-1", SecureElement("RC-1", KEY), random.Random(4), store, engine, ledger,
        "3.2.0", "3", ["store-and-forward-v1"], end,
    )  # fmt: skip
    link = Link(engine, cart, store)
    cart.link = link  # type: ignore[assignment]
    engine.at(T0, cart.power_on)
    for k in range(6):
        engine.at(T0 + 600 + k * 1800, lambda: cart.available and cart.start_session("guest", 25))
    outage = (T0 + 3600, T0 + 5400)
    engine.at(outage[0], lambda: store.set_links(wifi=False, lte=False))
    engine.at(outage[1], lambda: store.set_links(wifi=True, lte=True))
    engine.run(end)
    engine.run(end + 8 * 3600, stop_when=lambda: cart.quiet)
    assert cart.quiet and not cart.flash

    made = ledger.books["RC-1"].made
    assert ledger.books["RC-1"].delivered == set(made)  # every record reached the broker
    starts = [r.body["session_id"] for r in made.values() if r.type == "session-start"]
    ends = [r for r in made.values() if r.type == "session-end"]
    assert len(starts) >= 3 and sorted(starts) == sorted(r.body["session_id"] for r in ends)
    assert {r.body["outcome"] for r in ends} <= {"complete", "abandoned", "voided"}

    offline = [r for r in made.values() if outage[0] <= r.made_at < outage[1]]
    assert offline and ledger.counts["cart.stored_offline"] >= len(offline)
    after = [(t, seq) for t, seq, kind in link.published if t >= outage[1] and kind != "hello"]
    first_back = [seq for _, seq in after][: len(offline)]
    assert first_back == sorted(first_back)  # republished in order
    assert {r.seq for r in offline} <= {seq for _, seq in after}
    healths = sorted(r.made_at for r in made.values() if r.type == "health")
    gaps = {round(b - a) for a, b in itertools.pairwise(healths)}
    assert 60 in gaps and 300 in gaps  # every minute while shopping, every 5 minutes otherwise
    if not ledger.counts["cart.left_in_car_park"]:
        assert max(gaps) <= 300
    hellos = [r for r in made.values() if r.type == "hello"]
    assert len(hellos) == 2  # one per connection: at power-up and after the outage
    assert hellos[1].body["lowest_seq_held"] == min(r.seq or 0 for r in offline)


def test_gtins_carry_their_check_digit() -> None:
    assert gtin13("400638133393") == "4006381333931"
    assert all(len(item.gtin) == 13 for item in catalogue(random.Random(2), 50))
