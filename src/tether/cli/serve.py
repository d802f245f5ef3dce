"""``tether serve`` and ``tether broker``: run the platform's service and front doors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from tether.cli.context import console, platform
from tether.doors.mqtt.broker import BrokerLayout, write_broker_files
from tether.doors.mqtt.frontdoor import MqttFrontDoor
from tether.service.app import create_app
from tether.service.auth import admin_token

broker_app = typer.Typer(no_args_is_help=True, help="The Mosquitto front door's configuration.")


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="HTTP bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port.")] = None,
    mqtt: Annotated[
        bool | None, typer.Option("--mqtt/--no-mqtt", help="Run the Mosquitto front door.")
    ] = None,
) -> None:
    """Run the HTTP service and, unless disabled, the MQTT front door (Ctrl-C stops both)."""
    with platform(ctx) as p:
        http_host = host or p.settings.http.host
        http_port = p.settings.http.port if port is None else port
        front_door = None
        run_mqtt = p.settings.mqtt.enabled if mqtt is None else mqtt
        if run_mqtt and not p.registry.list_tenants():
            console.print(
                "[yellow]no tenant yet, so no device could connect: the MQTT front "
                "door stays off. Create one with: tether ca init --tenant NAME[/]"
            )
            run_mqtt = False
        if run_mqtt:
            front_door = MqttFrontDoor(p)
            front_door.start()
            console.print(
                f"MQTT front door: mqtts://{p.settings.mqtt.host}:"
                f"{p.settings.mqtt.port} (devices trust {front_door.layout.service_ca})"
            )
        token_source = (
            "settings" if p.settings.admin_token else f"{p.settings.data_dir}/admin-token"
        )
        admin_token(p.settings)
        console.print(
            f"HTTP service: http://{http_host}:{http_port}  "
            f"(health: /healthz, operator token in {token_source})"
        )
        try:
            uvicorn.run(create_app(p), host=http_host, port=http_port, log_level="warning")
        finally:
            if front_door is not None:
                front_door.stop()
                console.print("MQTT front door stopped")


async def _run_servers(servers: list[uvicorn.Server]) -> None:
    """Run every server until one stops (Ctrl-C), then stop the others."""
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


@broker_app.command("config")
def broker_config(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write into.")],
) -> None:
    """Write a Mosquitto configuration (certificates, CRLs, ACLs) for operators to run."""
    with platform(ctx) as p:
        layout = write_broker_files(BrokerLayout(out), p.authority, p.settings.mqtt)
        console.print(f"run it with: mosquitto -c {layout.config}")
