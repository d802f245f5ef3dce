"""The HTTPS door on a free port over real TLS, and clients holding a device's certificate."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from tests.gate.conftest import Device
from tether.platform import Platform
from tether.service.app import create_app
from tether.service.tls import https_config
from tether.testing import free_port


@contextmanager
def https_door(platform: Platform, directory: Path) -> Iterator[str]:
    """Serve the platform's app over TLS; yields its base URL."""
    port = free_port()
    config = https_config(
        create_app(platform), platform.authority, directory, "127.0.0.1", port, ["127.0.0.1"]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def trusting(platform: Platform) -> ssl.SSLContext:
    """A TLS context that trusts the platform's service CA and shows no certificate."""
    return ssl.create_default_context(cadata=platform.authority.service_ca().cert_pem)


def device_client(
    platform: Platform, device: Device, base_url: str, directory: Path
) -> httpx.Client:
    """A client presenting ``device``'s certificate, its key exported for TLS into ``directory``."""
    cert, key = directory / f"{device.serial}.pem", directory / f"{device.serial}.key"
    cert.write_text(platform.secure_elements.certificate(device.serial))
    device.element.export_key_for_tls(key)
    ctx = trusting(platform)
    ctx.load_cert_chain(str(cert), str(key))
    return httpx.Client(verify=ctx, base_url=base_url)
