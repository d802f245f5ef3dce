"""The MQTT front door: a Mosquitto broker configured and run by tether."""

from tether.doors.mqtt.broker import Broker, BrokerLayout, write_broker_files

__all__ = ["Broker", "BrokerLayout", "write_broker_files"]
