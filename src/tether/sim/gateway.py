"""The phone app's side of tether's HTTPS front door, as any app would call it.

Account sign-up (``POST /v1/accounts``, with the operator token, as tether's
own sign-up path stands today), pairing challenges (``POST
/v1/pairing/challenges``) and uploads (``POST /v1/records``, gateway mode),
over one keep-alive TLS connection that trusts the platform's service CA.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tether.sim.errors import SimulationError

_RETRYABLE = (http.client.RemoteDisconnected, ConnectionError, http.client.CannotSendRequest)


@dataclass(frozen=True)
class Answer:
    """One record's result from the door."""

    device: str
    seq: int | None
    outcome: str
    code: str | None


@dataclass(frozen=True)
class Upload:
    status: int
    results: list[Answer]
    retry_after: float | None = None
    use: dict[str, list[str]] | None = None  # capabilities in use, per device (section 5)


class Gateway:
    def __init__(self, host: str, port: int, service_ca_pem: str, timeout: float = 60.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._context = ssl.create_default_context(cadata=service_ca_pem)
        self._conn: http.client.HTTPSConnection | None = None
        self.requests = 0

    def _connection(self) -> http.client.HTTPSConnection:
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self._context
            )
        return self._conn

    def _call(self, path: str, body: dict[str, Any], token: str) -> tuple[int, Any, str | None]:
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for attempt in range(3):
            conn = self._connection()
            try:
                conn.request("POST", path, data, headers)
                response = conn.getresponse()
                raw = response.read()
            except _RETRYABLE:
                self.close()  # a dropped keep-alive connection: open another and send again
                if attempt == 2:
                    raise
                continue
            except OSError as exc:
                self.close()
                raise SimulationError(
                    f"the HTTPS door at https://{self.host}:{self.port} did not answer {path}: "
                    f"{exc}"
                ) from exc
            self.requests += 1
            try:
                doc = json.loads(raw) if raw else None
            except ValueError:
                doc = None
            return response.status, doc, response.getheader("Retry-After")
        raise AssertionError("unreachable")

    def _refused(self, path: str, status: int, doc: Any) -> SimulationError:
        detail = doc.get("detail") if isinstance(doc, dict) else doc
        return SimulationError(f"the HTTPS door refused {path} with {status}: {detail}")

    def create_account(self, operator_token: str, tenant: str) -> tuple[str, str]:
        """A new account and its token, the way an app's sign-up reaches tether."""
        status, doc, _ = self._call("/v1/accounts", {"tenant": tenant}, operator_token)
        if status != 200 or not isinstance(doc, dict):
            raise self._refused("/v1/accounts", status, doc)
        return str(doc["account"]), str(doc["token"])

    def challenge(self, token: str, serial: str) -> str:
        """A pairing challenge for ``serial``, issued to the token's account (28 hex)."""
        status, doc, _ = self._call("/v1/pairing/challenges", {"device": serial}, token)
        if status != 200 or not isinstance(doc, dict):
            raise self._refused("/v1/pairing/challenges", status, doc)
        return str(doc["challenge"])

    def upload(self, token: str, records: Sequence[tuple[str, bytes]]) -> Upload:
        """Gateway-mode upload; a 429 comes back as an :class:`Upload` to try later."""
        body = {
            "records": [
                {"device": serial, "data": base64.b64encode(data).decode()}
                for serial, data in records
            ]
        }
        status, doc, retry = self._call("/v1/records", body, token)
        if status == 429:
            return Upload(status, [], float(retry) if retry else 1.0)
        if status != 200 or not isinstance(doc, dict):
            raise self._refused("/v1/records", status, doc)
        results = [
            Answer(str(r["device"]), r.get("seq"), str(r["outcome"]), r.get("code"))
            for r in doc["results"]
        ]
        use = doc.get("use")
        agreed = (
            {str(k): [str(c) for c in v] for k, v in use.items() if isinstance(v, list)}
            if isinstance(use, dict)
            else None
        )
        return Upload(status, results, use=agreed)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
