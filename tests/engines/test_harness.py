"""The engine harness: each engine starts, answers, and stops cleanly."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tether.doors.mqtt.broker import BRIDGE_CN
from tether.errors import EngineError
from tether.keys.pkcs11 import Pkcs11KeyCustody, parse_pkcs11_url
from tether.platform import Platform
from tether.settings import load_settings
from tether.testing import (
    MosquittoInstance,
    NatsCluster,
    NatsInstance,
    PostgresInstance,
    SoftHsmToken,
    find_binary,
    free_port,
)


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def proc_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


# PostgreSQL -------------------------------------------------------------------------------


def test_session_postgres_answers(postgres: PostgresInstance) -> None:
    assert postgres.url == f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"
    assert postgres.psql("SELECT 40 + 2") == "42"
    url = postgres.create_database("harness_answers")
    assert url.endswith(f":{postgres.port}/harness_answers")
    assert postgres.psql("SELECT current_database()", "harness_answers") == "harness_answers"


@pytest.mark.engine("postgres")
def test_postgres_lifecycle_runs_unprivileged_survives_a_kill_and_stops() -> None:
    with PostgresInstance() as pg:
        workdir = pg.workdir
        assert pg.proc is not None
        postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
        if os.geteuid() == 0:
            assert proc_uid(postmaster) != 0, "PostgreSQL must not run as root"
        # Only loopback, and not the machine's own server's port.
        assert pg.port != 5432
        assert pg.psql("SHOW listen_addresses") == "127.0.0.1"

        pg.psql("CREATE TABLE t (n int); INSERT INTO t VALUES (7)")
        pg.kill()
        assert not listening("127.0.0.1", pg.port)
        pg.restart()
        assert pg.psql("SELECT n FROM t") == "7"
        port = pg.port
    assert not pg.running()
    assert not listening("127.0.0.1", port)
    assert not workdir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(postmaster, 0)


# NATS -------------------------------------------------------------------------------------


def test_session_nats_answers_with_jetstream(nats: NatsInstance) -> None:
    with socket.create_connection((nats.host, nats.port), timeout=2) as sock:
        info = sock.recv(4096)
    assert info.startswith(b"INFO {")
    assert b'"jetstream":true' in info
    assert nats.healthz() == (200, {"status": "ok"})


@pytest.mark.engine("nats")
def test_nats_lifecycle() -> None:
    with NatsInstance() as server:
        port, monitor, workdir = server.port, server.monitor_port, server.workdir
        assert listening("127.0.0.1", port)
        status, varz = server.monitor("varz")
        assert status == 200
        assert varz["jetstream"]["config"]["store_dir"].startswith(str(workdir))
    assert not listening("127.0.0.1", port)
    assert not listening("127.0.0.1", monitor)
    assert not workdir.exists()


@pytest.mark.engine("nats")
def test_nats_kill_and_restart_keep_the_port_and_the_store() -> None:
    with NatsInstance() as server:
        port = server.port
        server.kill()
        assert not server.running()
        assert not listening("127.0.0.1", port)
        server.restart()
        assert server.port == port
        assert listening("127.0.0.1", port)
        assert server.healthz() == (200, {"status": "ok"})
        status, jsz = server.monitor("jsz")
        assert status == 200
        assert jsz["config"]["store_dir"].startswith(str(server.store_dir))


@pytest.mark.engine("nats")
def test_nats_cluster_elects_a_jetstream_leader() -> None:
    with NatsCluster(3) as cluster:
        assert len(cluster.urls) == 3
        assert cluster.url == ",".join(cluster.urls)
        leaders = set()
        for node in cluster.nodes:
            assert node.healthz()[0] == 200
            assert node.monitor("routez")[1]["num_routes"] == 2
            leaders.add(node.monitor("jsz")[1]["meta_cluster"]["leader"])
        assert len(leaders) == 1
        ports = [node.port for node in cluster.nodes]
    assert not any(listening("127.0.0.1", p) for p in ports)


@pytest.mark.engine("nats")
def test_a_failed_start_reports_the_engine_log_and_keeps_it() -> None:
    server = NatsInstance(extra_args=["--config", "/nonexistent/tether-nats.conf"])
    with pytest.raises(EngineError) as raised:
        server.start()
    message = str(raised.value)
    assert "exited with code" in message
    assert "/nonexistent/tether-nats.conf" in message  # from the server's own log
    assert str(server.log_path) in message
    assert server.log_path.exists()
    workdir = server.workdir
    server.stop()
    assert not workdir.exists()


# SoftHSM2 ---------------------------------------------------------------------------------


def test_softhsm_token_opens_through_its_url(softhsm: SoftHsmToken) -> None:
    attrs = parse_pkcs11_url(softhsm.url, environ={})
    assert attrs["token"] == softhsm.label
    assert Path(attrs["module-path"]).exists()
    assert os.environ["SOFTHSM2_CONF"] == str(softhsm.conf_path)
    custody = Pkcs11KeyCustody(softhsm.url)
    try:
        assert isinstance(custody.labels(), list)
    finally:
        custody.close()


def test_a_second_softhsm_configuration_in_one_process_is_refused(
    softhsm: SoftHsmToken,
) -> None:
    Pkcs11KeyCustody(softhsm.url).close()  # the module is loaded now
    with pytest.raises(EngineError, match="one SoftHsmToken per process"):
        SoftHsmToken(label="another").start()
    assert os.environ["SOFTHSM2_CONF"] == str(softhsm.conf_path)


# Mosquitto --------------------------------------------------------------------------------


def open_platform(data_dir: Path, **mqtt: object) -> Platform:
    settings = load_settings(
        {
            "data_dir": str(data_dir),
            "mqtt": {"port": free_port(), "internal_port": free_port(), **mqtt},
        },
        config_file=data_dir / "none.toml",
        environ={},
    )
    platform = Platform.open(settings)
    platform.authority.init_tenant("acme")
    return platform


@pytest.mark.engine("mosquitto")
def test_mosquitto_lifecycle(tmp_path: Path) -> None:
    platform = open_platform(tmp_path / "tether")
    try:
        with MosquittoInstance(platform, watch=False) as broker:
            assert broker.url == f"mqtts://127.0.0.1:{broker.port}"
            assert broker.door is not None
            proc = broker.door.broker.proc
            assert proc is not None
            # tether's bridge identity connects on the internal listener and gets a CONNACK.
            cert, key = broker.client_files(BRIDGE_CN)
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="harness-bridge")
            client.tls_set(ca_certs=str(broker.service_ca), certfile=str(cert), keyfile=str(key))
            codes: list[object] = []
            client.on_connect = lambda _c, _u, _f, rc, _p: codes.append(rc)
            client.connect("127.0.0.1", broker.internal_port)
            deadline = time.monotonic() + 5
            while not codes and time.monotonic() < deadline:
                client.loop(0.1)
            client.disconnect()
            assert [str(c) for c in codes] == ["Success"]
            assert "as harness-bridge" in broker.log()
        assert proc.poll() is not None
        assert not listening("127.0.0.1", broker.port)
        assert not listening("127.0.0.1", broker.internal_port)
    finally:
        platform.close()


def test_a_missing_binary_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"apt-get install some-package"):
        find_binary("tether-no-such-binary", "some-package")
    platform = open_platform(tmp_path / "tether", mosquitto="tether-no-such-mosquitto")
    try:
        with pytest.raises(EngineError, match=r"apt-get install mosquitto"):
            MosquittoInstance(platform).start()
    finally:
        platform.close()


def test_the_public_api_is_curated() -> None:
    import tether.testing

    assert tether.testing.__all__ == sorted(tether.testing.__all__)
    for name in tether.testing.__all__:
        assert getattr(tether.testing, name) is not None
