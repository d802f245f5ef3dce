"""An unmodified AWS IoT Device SDK v2 client as a starter-kit power tool.

The SDK (``awsiotsdk``, over the ``awscrt`` wheels it bundles) is built with its
own builders, ``mtls_from_path`` for MQTT 3.1.1 and for MQTT 5, and connects over
mutual TLS with a provisioned power-tool certificate to the Mosquitto that
:class:`Runtime` starts. Nothing in it is patched: the port is not 443, so the
SDK asks for no ALPN, and the metrics username it sends is ignored by a broker
that takes the identity from the certificate's CN. Its legacy telemetry, one
``event_id`` repeated, lands in the telemetry store exactly once per event.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from awscrt import mqtt, mqtt5  # type: ignore[import-untyped]
from awsiot import mqtt5_client_builder, mqtt_connection_builder  # type: ignore[import-untyped]

from tether.platform import Platform
from tether.runtime import Runtime
from tether.settings import load_settings
from tether.testing import free_port

pytestmark = pytest.mark.engine("mosquitto")
TIMEOUT = 15.0


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("aws-sdk")
    settings = load_settings(
        {
            "data_dir": str(root / "t"),
            "mqtt": {"port": free_port(), "internal_port": free_port()},
        },
        config_file=root / "none.toml",
        environ={},
    )
    p = Platform.open(settings)
    p.authority.init_tenant("acme")
    yield p
    p.close()


@pytest.fixture(scope="module")
def runtime(platform: Platform) -> Iterator[Runtime]:
    rt = Runtime(platform, mqtt=True)
    rt.start()
    yield rt
    rt.stop()


@dataclass(frozen=True)
class Tool:
    """A provisioned power tool's TLS files, as its firmware would hold them."""

    serial: str
    cert: Path
    key: Path
    ca: Path


def provision_tool(platform: Platform, runtime: Runtime, directory: Path) -> Tool:
    assert runtime.front_door is not None
    elements = platform.secure_elements
    serial = platform.provisioner.provision(elements, "acme", "power-tool", "A", 1)[0].serial
    cert = directory / f"{serial}.pem"
    cert.write_text(elements.certificate(serial))
    key = elements.open(serial).export_key_for_tls(directory / f"{serial}.key")
    return Tool(serial, cert, key, runtime.front_door.layout.service_ca)


def telemetry(
    tool: Tool, event_id: str, battery: float = 72, fault: str | None = None
) -> dict[str, Any]:
    """A starter-kit telemetry message, flat JSON as the tools' firmware sends it."""
    return {
        "event_id": event_id,
        "device_id": tool.serial,
        "ts": int(time.time() * 1000),
        "battery_pct": battery,
        "torque_nm": 41.5,
        "usage_min": 12,
        "fault": fault,
        "site": "north-yard",
    }


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def settle(platform: Platform, serial: str, published: int) -> None:
    """Wait until all ``published`` messages are in the raw stream, judged and projected.

    Counting the raw entries (the repeated message included) and then waiting for
    the gate worker and the projector to pass them makes "exactly once" a fact
    about a quiet pipeline, not about how long the test slept.
    """
    raw = platform.stream("raw")

    def offsets() -> list[int]:
        return [e.offset for e in raw.read(0, 100_000) if e.headers.get("serial") == serial]

    wait_for(lambda: len(offsets()) >= published, f"{published} raw records from {serial}")
    assert len(offsets()) == published  # one raw record per QoS 1 message, no more
    wait_for(lambda: platform.gate_group.pending() == 0, "the gate worker")
    events = platform.stream("events")
    end = events.last_offset()
    wait_for(lambda: events.position("projector") >= end, "the projector")


def assert_landed_once(platform: Platform, tool: Tool, event_ids: list[str]) -> None:
    stored = platform.telemetry.latest(tool.serial, 100)
    assert sorted(e.dedupe_key for e in stored) == sorted(f"event_id:{i}" for i in event_ids)
    for e in stored:
        assert (e.device_class, e.type, e.v, e.seq) == ("power-tool", "telemetry", 1, None)
        assert e.site == "north-yard" and not e.clock_corrected
        assert e.body["torque_nm"] == 41.5 and e.body["usage_min"] == 12
        assert "event_id" not in e.body and "device_id" not in e.body


def test_mqtt311_client_from_the_sdk_builder_lands_telemetry_once(
    platform: Platform, runtime: Runtime, tmp_path: Path
) -> None:
    tool = provision_tool(platform, runtime, tmp_path)
    notices: queue.Queue[tuple[str, bytes]] = queue.Queue()
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="127.0.0.1",
        port=platform.settings.mqtt.port,
        cert_filepath=str(tool.cert),
        pri_key_filepath=str(tool.key),
        ca_filepath=str(tool.ca),
        client_id=tool.serial,
        clean_session=True,
        keep_alive_secs=30,
    )
    connected = connection.connect().result(TIMEOUT)
    assert connected["session_present"] is False
    try:
        subscribed, _ = connection.subscribe(
            topic=f"tether/v1/{tool.serial}/rejects",
            qos=mqtt.QoS.AT_LEAST_ONCE,
            callback=lambda topic, payload, **_: notices.put((topic, payload)),
        )
        assert subscribed.result(TIMEOUT)["qos"] == mqtt.QoS.AT_LEAST_ONCE
        messages = [
            telemetry(tool, "e-1"),
            telemetry(tool, "e-2", fault="E42"),
            telemetry(tool, "e-3", battery=5.5),
        ]
        messages.append(dict(messages[1]))  # the firmware sends e-2 again
        messages.append(telemetry(tool, "e-4", battery=150))  # out of its schema
        for message in messages:
            future, packet_id = connection.publish(
                topic=f"telemetry/{tool.serial}",
                payload=json.dumps(message),
                qos=mqtt.QoS.AT_LEAST_ONCE,
            )
            assert future.result(TIMEOUT)["packet_id"] == packet_id  # the broker's PUBACK
        topic, payload = notices.get(timeout=TIMEOUT)
        assert topic == f"tether/v1/{tool.serial}/rejects"
        assert json.loads(payload)["code"] == "schema_invalid"
    finally:
        connection.disconnect().result(TIMEOUT)
    settle(platform, tool.serial, len(messages))
    assert_landed_once(platform, tool, ["e-1", "e-2", "e-3"])
    by_id = {e.dedupe_key: e for e in platform.telemetry.latest(tool.serial, 100)}
    assert by_id["event_id:e-2"].body["fault"] == "E42"
    assert by_id["event_id:e-3"].body["battery_pct"] == 5.5
    assert by_id["event_id:e-1"].device_ts == messages[0]["ts"]


def test_mqtt5_client_from_the_sdk_builder_lands_telemetry_once(
    platform: Platform, runtime: Runtime, tmp_path: Path
) -> None:
    tool = provision_tool(platform, runtime, tmp_path)
    other = provision_tool(platform, runtime, tmp_path)
    connected: Future[mqtt5.LifecycleConnectSuccessData] = Future()
    stopped: Future[None] = Future()
    notices: queue.Queue[mqtt5.PublishPacket] = queue.Queue()

    def on_success(data: mqtt5.LifecycleConnectSuccessData) -> None:
        if not connected.done():
            connected.set_result(data)

    def on_failure(data: mqtt5.LifecycleConnectFailureData) -> None:
        if not connected.done():
            connected.set_exception(AssertionError(f"connect failed: {data.exception}"))

    client = mqtt5_client_builder.mtls_from_path(
        endpoint="127.0.0.1",
        port=platform.settings.mqtt.port,
        cert_filepath=str(tool.cert),
        pri_key_filepath=str(tool.key),
        ca_filepath=str(tool.ca),
        client_id=tool.serial,
        on_publish_received=lambda data: notices.put(data.publish_packet),
        on_lifecycle_connection_success=on_success,
        on_lifecycle_connection_failure=on_failure,
        on_lifecycle_stopped=lambda _: stopped.set_result(None),
    )
    client.start()
    try:
        connack = connected.result(TIMEOUT).connack_packet
        assert connack is not None and connack.reason_code == mqtt5.ConnectReasonCode.SUCCESS
        suback = client.subscribe(
            mqtt5.SubscribePacket(
                subscriptions=[
                    mqtt5.Subscription(f"tether/v1/{tool.serial}/rejects", mqtt5.QoS.AT_LEAST_ONCE)
                ]
            )
        ).result(TIMEOUT)
        assert suback.reason_codes == [mqtt5.SubackReasonCode.GRANTED_QOS_1]
        messages = [telemetry(tool, "m-1"), telemetry(tool, "m-2")]
        messages.insert(1, dict(messages[0]))  # m-1 twice
        messages.append(telemetry(tool, "m-3", battery=-1))  # out of its schema
        for message in messages:
            sent = client.publish(
                mqtt5.PublishPacket(
                    topic=f"telemetry/{tool.serial}",
                    payload=json.dumps(message).encode(),
                    qos=mqtt5.QoS.AT_LEAST_ONCE,
                )
            ).result(TIMEOUT)
            assert sent.puback is not None
            assert sent.puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
        # Another tool's topic is refused outright on MQTT 5 (contract section 6).
        denied = client.publish(
            mqtt5.PublishPacket(
                topic=f"telemetry/{other.serial}",
                payload=json.dumps(telemetry(other, "spoof")).encode(),
                qos=mqtt5.QoS.AT_LEAST_ONCE,
            )
        ).result(TIMEOUT)
        assert denied.puback is not None
        assert denied.puback.reason_code == mqtt5.PubackReasonCode.NOT_AUTHORIZED
        notice = notices.get(timeout=TIMEOUT)
        assert notice.topic == f"tether/v1/{tool.serial}/rejects"
        assert json.loads(bytes(notice.payload))["code"] == "schema_invalid"
    finally:
        client.stop()
        stopped.result(TIMEOUT)
    settle(platform, tool.serial, len(messages))
    assert_landed_once(platform, tool, ["m-1", "m-2"])
    assert platform.telemetry.latest(other.serial, 10) == []
    assert not [e for e in platform.stream("raw").read(0, 100_000) if b"spoof" in e.data]
