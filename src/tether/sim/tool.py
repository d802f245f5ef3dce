"""The starter kit's cordless tools: legacy telemetry on ``telemetry/{serial}``.

What it models, from the starter kit (002 part 10) and the power-tool class
pack: firmware already in the field that speaks neither the contract's
envelope nor its signatures. Over MQTT with mutual TLS, a tool publishes flat
JSON (``event_id``, ``device_id``, ``ts`` and its readings) to its legacy topic
every few minutes while it is in use on a job site, during working hours on
weekdays. Job-site coverage drops out now and then; the tool holds what it
made in a small queue in memory and sends it when the link is back, dropping
the oldest when the queue is full (the platform never sees those).
"""

from __future__ import annotations

import random
from collections import deque

from tether.sim.engine import Engine
from tether.sim.homes import local_midnight
from tether.sim.ledger import Ledger
from tether.sim.mqtt import MqttLink
from tether.sim.wire import Record, legacy_record

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
QUEUE_LIMIT = 200
FAULTS = ("E42", "OVERHEAT", "STALL")


class Tool:
    def __init__(
        self,
        serial: str,
        rng: random.Random,
        site: str,
        engine: Engine,
        ledger: Ledger,
        hours: tuple[float, float],
        utc_offset: float,
        end: float,
    ) -> None:
        self.serial = serial
        self.rng = rng
        self.site = site
        self.engine = engine
        self.ledger = ledger
        self.hours = hours
        self.utc_offset = utc_offset
        self.end = end
        self.topic = f"telemetry/{serial}"
        self.link: MqttLink | None = None
        self.counter = 0
        self.battery = rng.uniform(40.0, 100.0)
        self.usage_min = rng.uniform(0, 5000)
        self.queue: deque[Record] = deque()  # made while the link was down
        self.tickets: dict[int, Record] = {}
        self.site_up = True
        ledger.device(serial, "power-tool", site)

    def begin(self) -> None:
        assert self.link is not None
        self.link.connect()
        self._plan(self.engine.now)

    def _working(self, t: float) -> bool:
        local = t + self.utc_offset
        weekday = int(local // DAY + 3) % 7  # 1970-01-01 was a Thursday
        hour = (local % DAY) / HOUR
        return weekday < 5 and self.hours[0] <= hour < self.hours[1]

    def _plan(self, now: float) -> None:
        """The next reading: in ten minutes or so during work, else at tomorrow's start."""
        t = now + self.rng.uniform(7, 13) * MINUTE
        if not self._working(t):
            midnight = local_midnight(t, self.utc_offset)
            t = midnight + self.hours[0] * HOUR + self.rng.uniform(0, 20) * MINUTE
            while t <= now or not self._working(t):
                t += DAY
        if t < self.end:
            self.engine.at(t, self._reading)

    def _reading(self) -> None:
        now = self.engine.now
        in_use = self.rng.random() < 0.7
        used = self.rng.uniform(1, 9) if in_use else 0.0
        self.usage_min += used
        self.battery -= used * 0.9 + 0.1
        if self.battery < 12:
            self.battery = 100.0  # a fresh pack from the van
            self.ledger.count("tool.battery_swaps")
        fault = self.rng.choice(FAULTS) if self.rng.random() < 0.01 else None
        self.counter += 1
        fields = {
            "battery_pct": round(self.battery, 1),
            "torque_nm": round(self.rng.uniform(20, 180), 1) if in_use else 0.0,
            "usage_min": round(self.usage_min, 1),
            "fault": fault,
            "site": self.site,
        }
        record = legacy_record(
            f"{self.serial}-{self.counter:07d}", fields, int(now * 1000), self.serial, now
        )
        self.ledger.made(self.serial, record)
        self.ledger.count("tool.readings")
        if self.link is not None and self.link.up:
            self._publish(record)
        else:
            self._hold(record)
        self._plan(now)

    def _hold(self, record: Record) -> None:
        if len(self.queue) >= QUEUE_LIMIT:
            dropped = self.queue.popleft()
            self.ledger.discarded(self.serial, dropped.key)
            self.ledger.count("tool.readings_dropped")
        self.queue.append(record)
        self.ledger.count("tool.readings_held")

    def _publish(self, record: Record) -> None:
        assert self.link is not None
        self.tickets[self.link.publish(self.topic, record.data)] = record
        self.ledger.count("mqtt.publishes")

    # coverage on site
    def coverage_lost(self, seconds: float) -> None:
        self.site_up = False
        self.ledger.count("tool.coverage_lost")
        if self.link is not None and self.link.up:
            self.link.drop()
        self.engine.after(seconds, self._coverage_back)

    def _coverage_back(self) -> None:
        self.site_up = True
        if self.link is not None and not self.link.up:
            self.link.connect()

    # the link
    def on_up(self) -> None:
        if not self.site_up:
            assert self.link is not None
            self.link.drop()
            return
        unacked = list(self.tickets.values())
        self.tickets.clear()
        for record in [*unacked, *self.queue]:
            self._publish(record)
        self.queue.clear()

    def on_down(self, reason: str) -> None:
        self.ledger.count("mqtt.unacknowledged_at_link_loss", len(self.tickets))
        if self.site_up:  # not a coverage gap: the broker went away; come back soon
            self.engine.after(self.rng.uniform(2, 10), self._reconnect)

    def on_connect_failed(self, reason: str) -> None:
        self.ledger.count("tool.connect_failures")
        self.engine.after(self.rng.uniform(5, 30), self._reconnect)

    def _reconnect(self) -> None:
        if self.site_up and self.link is not None:
            self.link.connect()

    def on_ack(self, ticket: int) -> None:
        record = self.tickets.pop(ticket, None)
        if record is not None:
            self.ledger.delivered(self.serial, record.key, self.engine.now)

    def on_message(self, topic: str, payload: bytes) -> None:
        self.ledger.count("tool.unexpected_messages")

    @property
    def quiet(self) -> bool:
        return not self.queue and not self.tickets
