"""Mosquitto, configured from tether's own PKI and run as a child process.

Two listeners, each with its own trust:

- the device listener trusts only the tenants' device CAs (roots and every
  manufacturing CA in its trust window), requires a client certificate, takes
  the client's identity from the certificate CN, checks CRLs, and lets each
  device publish and subscribe only under ``tether/v1/{serial}/`` (plus the
  configured legacy publish topics);
- the internal listener, for tether's own clients (ingest bridge, control),
  trusts only the platform's service CA.

Every file is rewritten and the broker sent SIGHUP when trust or revocations
change; a revoked device's live connection is then taken over and closed by
tether's control client.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tether.classes.catalog import ClassCatalog
from tether.errors import EngineError
from tether.identity.ca import Authority, to_pem
from tether.settings import MqttSettings

CONTROL_CN = "tether:control"
BRIDGE_CN = "tether:bridge"


@dataclass(frozen=True)
class BrokerLayout:
    """Where the broker's files live."""

    root: Path

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def config(self) -> Path:
        return self.root / "mosquitto.conf"

    @property
    def service_ca(self) -> Path:
        """What devices must trust to connect: the broker's server certificate's CA."""
        return self.root / "service-ca.pem"

    def client(self, common_name: str) -> tuple[Path, Path]:
        stem = common_name.replace(":", "-")
        return self.root / f"{stem}.pem", self.root / f"{stem}.key"


def write_file(path: Path, data: str | bytes, private: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    mode = 0o600 if private else 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _acl(legacy_topics: list[str]) -> str:
    lines = [
        "# Written by tether: a device may use only its own topics (contract section 6).",
        "pattern write tether/v1/%u/records",
        "pattern read tether/v1/%u/commands",
        "pattern read tether/v1/%u/rejects",
    ]
    lines += [f"pattern write {t.replace('{serial}', '%u')}" for t in legacy_topics]
    return "\n".join(lines) + "\n"


def _internal_acl(legacy_topics: list[str]) -> str:
    lines = [
        "# Written by tether: its own clients on the internal listener.",
        f"user {BRIDGE_CN}",
        "topic read tether/v1/+/records",
        "topic write tether/v1/+/commands",
        "topic write tether/v1/+/rejects",
    ]
    lines += [f"topic read {t.replace('{serial}', '+')}" for t in legacy_topics]
    lines += [f"user {CONTROL_CN}", "topic read $SYS/broker/clients/#"]
    return "\n".join(lines) + "\n"


def _config(layout: BrokerLayout, settings: MqttSettings) -> str:
    p = layout.path
    return f"""# Written by tether; rewritten on every start and trust change. Do not edit.
per_listener_settings true
# Run as the user that runs tether, who owns these files (Mosquitto otherwise drops root
# privileges to its own user, who could not read them).
user {getpass.getuser()}
persistence true
persistence_location {p("data")}/
autosave_interval 1
log_dest stderr
log_type error
log_type warning
log_type notice
connection_messages true
max_inflight_messages 100
max_queued_messages {settings.max_queued_messages}

listener {settings.port} {settings.host}
protocol mqtt
cafile {p("device-cas.pem")}
crlfile {p("device-crls.pem")}
certfile {p("server.pem")}
keyfile {p("server.key")}
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
acl_file {p("device.acl")}

listener {settings.internal_port} 127.0.0.1
protocol mqtt
cafile {p("service-ca.pem")}
certfile {p("server.pem")}
keyfile {p("server.key")}
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
acl_file {p("internal.acl")}
"""


def device_ca_bundle(authority: Authority) -> str:
    """Every trusted manufacturing CA and its tenant's root, as one PEM bundle."""
    trusted = authority.trusted_manufacturing()
    if not trusted:
        raise EngineError(
            "no tenant has a trusted manufacturing CA, so no device could connect; "
            "create one first with: tether ca init --tenant NAME"
        )
    tenants = sorted({ca.tenant for ca in trusted if ca.tenant})
    return "".join([ca.cert_pem for ca in trusted] + [authority.root(t).cert_pem for t in tenants])


def write_trust_files(layout: BrokerLayout, authority: Authority) -> None:
    """(Re)write what changes with trust: device CAs and their revocation lists."""
    trusted = authority.trusted_manufacturing()
    crls = [authority.crl(ca).public_bytes(serialization.Encoding.PEM).decode() for ca in trusted]
    write_file(layout.path("device-cas.pem"), device_ca_bundle(authority))
    write_file(layout.path("device-crls.pem"), "".join(crls))


def legacy_topics(settings: MqttSettings, catalog: ClassCatalog) -> list[str]:
    """The classes' legacy publish topics and any the settings add."""
    packs = {r.pack.legacy.topic for r in catalog if r.pack.legacy is not None}
    return sorted(packs | set(settings.legacy_topics))


def write_broker_files(
    layout: BrokerLayout, authority: Authority, settings: MqttSettings, catalog: ClassCatalog
) -> BrokerLayout:
    """Write a complete Mosquitto configuration under ``layout.root``."""
    layout.root.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.root, 0o700)
    (layout.root / "data").mkdir(exist_ok=True)
    service = authority.service_ca()
    server_cert, server_key = authority.issue_service_certificate(
        "tether MQTT broker", hostnames=settings.hostnames
    )
    write_file(layout.service_ca, service.cert_pem)
    write_file(layout.path("server.pem"), to_pem(server_cert) + service.cert_pem)
    write_file(layout.path("server.key"), key_pem(server_key), private=True)
    for cn in (CONTROL_CN, BRIDGE_CN):
        cert, key = authority.issue_service_certificate(cn)
        cert_path, key_path = layout.client(cn)
        write_file(cert_path, to_pem(cert))
        write_file(key_path, key_pem(key), private=True)
    write_trust_files(layout, authority)
    legacy = legacy_topics(settings, catalog)
    write_file(layout.path("device.acl"), _acl(legacy))
    write_file(layout.path("internal.acl"), _internal_acl(legacy))
    write_file(layout.config, _config(layout, settings))
    return layout


def wait_for_port(
    host: str,
    port: int,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    what: str = "the service",
) -> None:
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise EngineError(f"{what} exited with code {proc.returncode} while starting")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise EngineError(f"{what} did not listen on {host}:{port} within {timeout:.0f} s")


class Broker:
    """A Mosquitto child process running a configuration tether wrote."""

    def __init__(self, layout: BrokerLayout, settings: MqttSettings) -> None:
        self.layout = layout
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = layout.path("mosquitto.log")

    def start(self, timeout: float = 10.0) -> None:
        # Debian installs Mosquitto in /usr/sbin, which is not on an ordinary user's PATH.
        binary = shutil.which(self.settings.mosquitto) or shutil.which(
            self.settings.mosquitto, path="/usr/sbin:/usr/local/sbin"
        )
        if binary is None:
            raise EngineError(
                f"the Mosquitto binary {self.settings.mosquitto!r} was not found; install it "
                "(Debian: apt-get install mosquitto) or set mqtt.mosquitto to its path"
            )
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.layout.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(
                self.settings.host,
                self.settings.port,
                timeout,
                self.proc,
                f"Mosquitto (log: {self.log_path})",
            )
            wait_for_port(
                "127.0.0.1",
                self.settings.internal_port,
                timeout,
                self.proc,
                f"Mosquitto (log: {self.log_path})",
            )
        except EngineError:
            self.stop()
            raise

    def reload(self) -> None:
        """Make Mosquitto re-read its configuration, ACLs, CAs and CRLs."""
        if self.proc is None or self.proc.poll() is not None:
            raise EngineError(f"Mosquitto is not running (log: {self.log_path})")
        self.proc.send_signal(signal.SIGHUP)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
