"""``tether serve`` and ``tether broker``: run the platform's service and front doors."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from tether.cli.context import console, platform
from tether.doors.mqtt.broker import BrokerLayout, write_broker_files
from tether.runtime import Runtime
from tether.service.app import create_app
from tether.service.auth import admin_token
from tether.service.tls import https_config
from tether.settings import ROLES

broker_app = typer.Typer(no_args_is_help=True, help="The Mosquitto front door's configuration.")


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="HTTP bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port.")] = None,
    mqtt: Annotated[
        bool | None, typer.Option("--mqtt/--no-mqtt", help="Run the Mosquitto front door.")
    ] = None,
) -> None:
    """Run the platform: HTTP and HTTPS doors, MQTT door, gate and projector (Ctrl-C stops)."""
    with platform(ctx) as p:
        http_host = host or p.settings.http.host
        http_port = p.settings.http.port if port is None else port
        has_tenant = bool(p.registry.list_tenants())
        run_mqtt = (p.settings.mqtt.enabled if mqtt is None else mqtt) and has_tenant
        if not has_tenant:
            console.print(
                "[yellow]no tenant yet, so no device could connect: the MQTT front door and "
                "the HTTPS door stay off. Create one with: tether ca init --tenant NAME[/]"
            )
        runtime = Runtime(p, mqtt=run_mqtt, roles=p.settings.workers.in_serve)
        runtime.start()
        elsewhere = [r for r in ROLES if r not in runtime.roles]
        if elsewhere:
            console.print(
                f"not run here (workers.in_serve): {', '.join(elsewhere)}; start them with "
                + ", ".join(f"tether worker --{r}" for r in elsewhere)
            )
        if runtime.front_door is not None:
            console.print(
                f"MQTT front door: mqtts://{p.settings.mqtt.host}:{p.settings.mqtt.port} "
                f"(devices trust {runtime.front_door.layout.service_ca})"
            )
        app = create_app(p)
        configs = [uvicorn.Config(app, host=http_host, port=http_port, log_level="warning")]
        token_source = (
            "settings" if p.settings.admin_token else f"{p.settings.data_dir}/admin-token"
        )
        admin_token(p.settings)
        console.print(
            f"HTTP service: http://{http_host}:{http_port}  "
            f"(health: /healthz, operator token in {token_source})"
        )
        if p.settings.https.enabled and has_tenant:
            https = p.settings.https
            configs.append(
                https_config(
                    app,
                    p.authority,
                    p.settings.data_dir / "https",
                    https.host,
                    https.port,
                    https.hostnames,
                )
            )
            console.print(f"HTTPS records door: https://{https.host}:{https.port}/v1/records")
        try:
            asyncio.run(_run_servers([uvicorn.Server(c) for c in configs]))
        except KeyboardInterrupt:
            pass
        finally:
            runtime.stop()
            console.print(f"stopped: HTTP, MQTT front door, {', '.join(sorted(runtime.roles))}")


def worker(
    ctx: typer.Context,
    gate: Annotated[
        bool, typer.Option("--gate", help="Judge MQTT records (run any number).")
    ] = False,
    bridge: Annotated[
        bool,
        typer.Option("--bridge", help="Move MQTT records from the broker into the raw stream."),
    ] = False,
    projector: Annotated[
        bool, typer.Option("--projector", help="Fill the telemetry store and device state.")
    ] = False,
    rejects: Annotated[bool, typer.Option("--rejects", help="Keep the reject log.")] = False,
    retention: Annotated[
        bool, typer.Option("--retention", help="Trim raw records past their retention.")
    ] = False,
) -> None:
    """Run roles apart from `tether serve`, e.g. several `tether worker --gate` (Ctrl-C stops).

    Take the roles out of `tether serve` with the `workers.in_serve` setting. The
    bridge and gate workers reach the broker `tether serve` runs, on its internal
    listener, with the credentials it wrote into the data directory.
    """
    chosen = {"gate": gate, "bridge": bridge, "projector": projector, "rejects": rejects}
    chosen["retention"] = retention
    roles = [r for r in ROLES if chosen[r]]
    if not roles:
        raise typer.BadParameter(
            "name at least one role: " + ", ".join(f"--{r}" for r in ROLES), param_hint="roles"
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with platform(ctx) as p:
        runtime = Runtime(p, mqtt=p.settings.mqtt.enabled, roles=roles, front_door=False)
        runtime.start()
        console.print(f"worker {os.getpid()}: {', '.join(roles)} (Ctrl-C stops)")
        try:
            stop.wait()
        finally:
            runtime.stop()
            console.print(f"worker {os.getpid()} stopped")


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
        layout = write_broker_files(BrokerLayout(out), p.authority, p.settings.mqtt, p.catalog)
        console.print(f"run it with: mosquitto -c {layout.config}")
