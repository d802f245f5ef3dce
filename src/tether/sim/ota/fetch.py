"""Fetching an update over HTTPS, as a device or a phone app does: byte ranges, resumable.

A cart connects with its own client certificate; a phone app sends its
account's bearer token. Both ask the door for ``Range: bytes=START-END``
pieces, so a link that drops mid-download costs only the piece under way:
the next request starts at the first byte not yet kept.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.sim.errors import SimulationError


@dataclass(frozen=True)
class Fetched:
    status: int
    data: bytes
    detail: str = ""


class Fetcher:
    """One keep-alive HTTPS connection to the door, as a device or as an account."""

    def __init__(
        self,
        host: str,
        port: int,
        service_ca_pem: str,
        *,
        cert: tuple[Path, Path] | None = None,
        token: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._context = ssl.create_default_context(cadata=service_ca_pem)
        if cert is not None:
            self._context.load_cert_chain(str(cert[0]), str(cert[1]))
        self.token = token
        self._conn: http.client.HTTPSConnection | None = None
        self.requests = 0

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def get(self, target: str, headers: dict[str, str] | None = None) -> Fetched:
        """GET a path (or a full URL on this door); the status and the body."""
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        for attempt in range(3):
            if self._conn is None:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self._context
                )
            try:
                self._conn.request("GET", path, headers=self._headers(headers))
                response = self._conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionError, http.client.CannotSendRequest):
                self.close()
                if attempt == 2:
                    raise
                continue
            except OSError as exc:
                self.close()
                raise SimulationError(f"the HTTPS door did not answer GET {path}: {exc}") from exc
            self.requests += 1
            detail = ""
            if response.status >= 400:
                try:
                    doc = json.loads(body)
                    detail = str(doc.get("detail", "")) if isinstance(doc, dict) else ""
                except ValueError:
                    detail = body[:200].decode(errors="replace")
            return Fetched(response.status, body, detail)
        raise AssertionError("unreachable")

    def json(self, path: str) -> Any:
        got = self.get(path)
        if got.status != 200:
            raise SimulationError(f"GET {path} answered {got.status}: {got.detail}")
        return json.loads(got.data)

    def range(self, url: str, start: int, stop: int) -> Fetched:
        """Bytes ``start`` up to ``stop`` (exclusive) of the image at ``url``."""
        return self.get(url, {"Range": f"bytes={start}-{stop - 1}"})

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
