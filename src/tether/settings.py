"""One typed settings object for the whole platform.

Values are layered, each layer overriding the one before:

    defaults < tether.toml < TETHER_* environment variables < explicit arguments

The config file is ``./tether.toml`` unless ``TETHER_CONFIG`` names another.
Nested keys use a double underscore in the environment: ``TETHER_MQTT__PORT=8883``
sets ``[mqtt] port``. Engines are chosen by URL; an empty URL means the embedded
engine under ``data_dir``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tether.errors import SettingsError

ENV_PREFIX = "TETHER_"
CONFIG_FILE = "tether.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class HttpsSettings(_Section):
    # The TLS listener: gateway uploads and direct-mode devices with client certificates.
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    hostnames: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1"])
    # The address devices reach this listener by, put in update jobs' download URLs;
    # empty: https://<first hostname>:<port>.
    public_url: str = ""

    def resolved_public_url(self) -> str:
        return self.public_url.rstrip("/") or f"https://{self.hostnames[0]}:{self.port}"


class MqttSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8883, ge=0, le=65535)
    # The listener for tether's own clients (ingest bridge, control); loopback only.
    internal_port: int = Field(default=8884, ge=0, le=65535)
    mosquitto: str = "mosquitto"
    # Names the broker's server certificate is valid for.
    hostnames: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1"])
    # Messages the broker holds per session (the bridge's, while it is down or the
    # stores push back) before it drops new ones: size it for the longest stall.
    max_queued_messages: int = Field(default=1_000_000, ge=1000)
    # Legacy publish topics beyond those the class packs declare ({serial} = the serial).
    legacy_topics: list[str] = Field(default_factory=list)


class IdentitySettings(_Section):
    device_cert_days: int = Field(default=3650, ge=1)
    root_ca_days: int = Field(default=7300, ge=1)
    manufacturing_ca_days: int = Field(default=3650, ge=1)
    # How often a long-running process re-reads revocations made elsewhere.
    revocation_poll_seconds: float = Field(default=5.0, gt=0, le=30)


class IngestSettings(_Section):
    # Per credential (account or device) on the HTTPS door: sustained rate and burst.
    requests_per_second: float = Field(default=50.0, gt=0)
    burst: float = Field(default=100.0, ge=1)
    # Per device, on the records' arrival times: records a second and burst; a record
    # over budget is refused as rate_limited (the sender keeps it and sends it later).
    device_records_per_second: float = Field(default=10.0, gt=0)
    device_burst: float = Field(default=1000.0, ge=1)
    # Accepted events not yet in the telemetry store beyond which the doors push back
    # (HTTPS: 429 with Retry-After; MQTT: the bridge leaves messages with the broker).
    max_backlog: int = Field(default=100_000, ge=1)
    # A gate worker that holds raw records this long without finishing them (it died
    # or stalled) loses them to the other workers.
    lease_seconds: float = Field(default=30.0, gt=0)
    # Records the gate judges at a time when it consumes the raw stream.
    batch: int = Field(default=500, ge=1, le=10_000)


Role = Literal["bridge", "gate", "projector", "rejects", "retention"]
ROLES: tuple[Role, ...] = ("bridge", "gate", "projector", "rejects", "retention")


class WorkersSettings(_Section):
    # The roles `tether serve` runs in its own process; the others run in
    # `tether worker` processes (the gate in as many as the load needs).
    in_serve: list[Role] = Field(default_factory=lambda: list(ROLES))


class Settings(_Section):
    data_dir: Path = Path(".tether")
    # Entity store (registry, accounts, device state, rejects): sqlite:///... or
    # postgresql://... (PostgreSQL: run `tether migrate` first).
    entity_url: str = ""
    # Key custody for CA keys: file:<dir> or pkcs11:token=<label>?module-path=<lib>&pin-value=<pin>
    keys_url: str = ""
    # Key custody for the firmware-signing key, kept apart from the CA keys.
    firmware_keys_url: str = ""
    # Simulated secure elements of software devices (the simulator's "hardware").
    secure_elements_url: str = ""
    # Raw stream, accepted-event log and dead-letter stream: sqlite:///... (nats://... later).
    stream_url: str = ""
    # Telemetry store (accepted events by device and time): sqlite:///... or
    # postgresql://... (partitioned by day; run `tether migrate` first).
    telemetry_url: str = ""
    # Blob store (firmware images and patches, by SHA-256): file:<dir> (S3-compatible later).
    blob_url: str = ""
    admin_token: str = ""
    # Directories of extra device class packs (*.yaml); a pack here replaces a shipped one.
    class_packs: list[Path] = Field(default_factory=list)
    # How long raw records are kept for replay.
    raw_retention_days: float = Field(default=30, gt=0)
    # How long accepted events stay in the telemetry store (by corrected time); unset: for ever.
    telemetry_retention_days: float | None = Field(default=None, gt=0)
    http: HttpSettings = HttpSettings()
    https: HttpsSettings = HttpsSettings()
    mqtt: MqttSettings = MqttSettings()
    identity: IdentitySettings = IdentitySettings()
    ingest: IngestSettings = IngestSettings()
    workers: WorkersSettings = WorkersSettings()

    def resolved_entity_url(self) -> str:
        return self.entity_url or f"sqlite:///{self.data_dir / 'entity.sqlite'}"

    def resolved_keys_url(self) -> str:
        return self.keys_url or f"file:{self.data_dir / 'keys'}"

    def resolved_firmware_keys_url(self) -> str:
        return self.firmware_keys_url or f"file:{self.data_dir / 'firmware-keys'}"

    def resolved_secure_elements_url(self) -> str:
        return self.secure_elements_url or f"sqlite:///{self.data_dir / 'secure-elements.sqlite'}"

    def resolved_stream_url(self) -> str:
        return self.stream_url or f"sqlite:///{self.data_dir / 'stream.sqlite'}"

    def resolved_telemetry_url(self) -> str:
        return self.telemetry_url or f"sqlite:///{self.data_dir / 'telemetry.sqlite'}"

    def resolved_blob_url(self) -> str:
        return self.blob_url or f"file:{self.data_dir / 'blobs'}"


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = layer
        for part in path[:-1]:
            node = node.setdefault(part, {})
        leaf: Any = value
        if value.startswith("["):
            leaf = [item.strip() for item in value.strip("[]").split(",") if item.strip()]
        node[path[-1]] = leaf
    return layer


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from exc


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from every layer; explicit ``overrides`` win.

    Raises :class:`SettingsError` naming the offending key and where it came from.
    """
    env = os.environ if environ is None else environ
    if config_file is None:
        named = env.get(ENV_PREFIX + "CONFIG")
        config_file = Path(named) if named else Path(CONFIG_FILE)
        if named and not config_file.exists():
            raise SettingsError(f"TETHER_CONFIG names {named!r}, which does not exist")
    file_layer = _read_toml(config_file) if config_file.exists() else {}
    merged = _merge(_merge(file_layer, _from_env(env)), overrides or {})
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"])
            env_name = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
            problems.append(
                f"setting {key!r} (in {config_file} or {env_name}): {err['msg']}"
                f" (got {err.get('input')!r})"
            )
        raise SettingsError("; ".join(problems)) from exc
