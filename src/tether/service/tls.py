"""HTTPS with optional client certificates, for the direct-mode records door.

Uvicorn does not hand the TLS peer certificate to the application, so this
protocol class, a small extension of Uvicorn's h11 protocol, reads it from each
new connection and adds it to every request's scope as
``scope["extensions"]["tls"]["client_cert_der"]``. The TLS layer has already
checked the chain against the tenants' device CAs; the application's verifier
then checks the rest (trust window, revocation, registry).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from tether.doors.mqtt.broker import device_ca_bundle, key_pem, write_file
from tether.identity.ca import Authority, to_pem


class ClientCertProtocol(H11Protocol):
    """Uvicorn's h11 protocol, plus the client certificate in the request scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return
        inner = self.app

        async def with_certificate(scope: Any, receive: Any, send: Any) -> None:
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_der": der}
            await inner({**scope, "extensions": extensions}, receive, send)

        self.app = with_certificate


def https_config(
    app: Any, authority: Authority, directory: Path, host: str, port: int, hostnames: list[str]
) -> uvicorn.Config:
    """A Uvicorn config serving ``app`` over TLS with optional device certificates."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = authority.issue_service_certificate("tether HTTPS door", hostnames=hostnames)
    write_file(directory / "server.pem", to_pem(cert) + authority.service_ca().cert_pem)
    write_file(directory / "server.key", key_pem(key), private=True)
    write_file(directory / "device-cas.pem", device_ca_bundle(authority))
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        http=ClientCertProtocol,
        ssl_certfile=str(directory / "server.pem"),
        ssl_keyfile=str(directory / "server.key"),
        ssl_ca_certs=str(directory / "device-cas.pem"),
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
    )
