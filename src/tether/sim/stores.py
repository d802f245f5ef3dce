"""Supermarkets: the carts' world. Opening hours, customers, a catalogue, and two links.

A store's Wi-Fi and its LTE-M coverage are up or down for every cart in it at
once (a store outage takes both); a single cart also loses Wi-Fi now and then
(a fridge aisle, a roaming hiccup) and fails over to LTE-M. Customers arrive
through the day, busier at lunch and after work, and each takes a charged cart
from the dock if one is free.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

HOUR = 3600.0


@dataclass(frozen=True)
class Item:
    gtin: str
    price_cents: int
    weight_g: int | None  # None for items sold by the piece with no fixed weight


def gtin13(body: str) -> str:
    """A GTIN-13 with its check digit (GS1: weights 1 and 3 from the left)."""
    if len(body) != 12 or not body.isdigit():
        raise ValueError("a GTIN-13 body is 12 digits")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def catalogue(rng: random.Random, size: int = 400) -> list[Item]:
    items = []
    for _ in range(size):
        gtin = gtin13("40" + "".join(str(rng.randrange(10)) for _ in range(10)))
        weight = None if rng.random() < 0.1 else rng.randint(40, 3000)
        items.append(Item(gtin, rng.randint(49, 2999), weight))
    return items


# Relative customer flow by local hour: quiet mornings, a lunch peak, the evening rush.
FLOW = {7: 0.4, 8: 0.6, 9: 0.7, 10: 0.8, 11: 1.1, 12: 1.4, 13: 1.3, 14: 0.9, 15: 0.9}
FLOW |= {16: 1.2, 17: 1.6, 18: 1.7, 19: 1.3, 20: 0.9, 21: 0.5}


@dataclass
class Store:
    name: str
    opens_h: float
    closes_h: float
    customers_per_hour: float
    items: list[Item]
    wifi_up: bool = True
    lte_up: bool = True
    # Told when a link of the whole store goes down or comes back.
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def open_at(self, local_hour: float) -> bool:
        return self.opens_h <= local_hour < self.closes_h

    def flow(self, local_hour: float) -> float:
        return self.customers_per_hour * FLOW.get(int(local_hour), 0.6)

    def set_links(self, wifi: bool | None = None, lte: bool | None = None) -> None:
        if wifi is not None:
            self.wifi_up = wifi
        if lte is not None:
            self.lte_up = lte
        for told in list(self.listeners):
            told()
