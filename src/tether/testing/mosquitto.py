"""Mosquitto for tests: tether's own MQTT front door, for one platform."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from tether.doors.mqtt.broker import BrokerLayout
from tether.doors.mqtt.frontdoor import MqttFrontDoor
from tether.errors import EngineError
from tether.platform import Platform
from tether.testing.engines import Engine, log_tail

__all__ = ["MosquittoInstance"]


class MosquittoInstance(Engine):
    """Tether's MQTT front door on a real Mosquitto, for one platform.

    It is the production path, not a stand-in: the broker files come from
    :func:`~tether.doors.mqtt.broker.write_broker_files` and the broker runs under
    :class:`~tether.doors.mqtt.frontdoor.MqttFrontDoor`, whose revocation watcher
    runs when ``watch`` is true. The platform's settings name the ports: give it
    free ones (``mqtt.port`` and ``mqtt.internal_port`` from :func:`free_port`).
    """

    name = "mosquitto"

    def __init__(
        self,
        platform: Platform,
        layout: BrokerLayout | None = None,
        *,
        watch: bool = True,
    ) -> None:
        # The front door's own default place, under the platform's data directory.
        self._layout = layout or BrokerLayout(Path(platform.settings.data_dir) / "broker")
        super().__init__(self._layout.root)
        self.platform = platform
        self.watch = watch
        self.door: MqttFrontDoor | None = None

    @property
    def host(self) -> str:
        return self.platform.settings.mqtt.host

    @property
    def port(self) -> int:
        """The device listener (mutual TLS against the tenants' device CAs)."""
        return self.platform.settings.mqtt.port

    @property
    def internal_port(self) -> int:
        """The listener for tether's own clients (service CA)."""
        return self.platform.settings.mqtt.internal_port

    @property
    def url(self) -> str:
        return f"mqtts://{self.host}:{self.port}"

    @property
    def layout(self) -> BrokerLayout:
        if self.door is None:
            raise EngineError("Mosquitto has not been started")
        return self.door.layout

    @property
    def service_ca(self) -> Path:
        """The CA file a client needs to trust the broker."""
        return self.layout.service_ca

    def client_files(self, common_name: str) -> tuple[Path, Path]:
        """Certificate and key files of one of tether's own clients (control, bridge)."""
        return self.layout.client(common_name)

    def start(self) -> Self:
        if self.door is not None:
            return self
        mqtt = self.platform.settings.mqtt
        if not mqtt.port or not mqtt.internal_port:
            raise EngineError(
                "the platform's settings need mqtt.port and mqtt.internal_port set to free "
                "ports (tether.testing.free_port())"
            )
        self._make_workdir()
        door = MqttFrontDoor(self.platform, self._layout)
        try:
            door.start(watch=self.watch)
        except EngineError as exc:
            door.stop()
            raise EngineError(
                f"{exc}; the broker's log ends:\n{log_tail(door.broker.log_path)}"
            ) from exc
        except BaseException:
            door.stop()
            raise
        self.door = door
        return self

    def stop(self) -> None:
        if self.door is not None:
            self.door.stop()
            self.door = None
        self._remove_workdir()

    def log(self) -> str:
        if self.door is None:
            return ""
        return log_tail(self.door.broker.log_path)
