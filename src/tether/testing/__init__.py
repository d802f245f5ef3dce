"""Test support that ships with tether: real engines for integration tests.

Each engine starts from the machine's binaries on free loopback ports, is a
context manager with ``start()``, ``stop()``, a ``url`` and ``log()``, and raises
:class:`~tether.errors.EngineError` naming the Debian package to install when its
binary is missing (tests that need it then fail; they never skip)::

    from tether.store import migrations
    from tether.testing import PostgresInstance

    with PostgresInstance() as pg:
        url = pg.create_database("registry")
        migrations.upgrade(migrations.ENTITY, url)  # PostgreSQL stores need `tether migrate`
        registry = SqlRegistry(url)

- :class:`MosquittoInstance`: tether's own MQTT front door (the configuration
  tether writes, the broker child process and the revocation enforcer) for a
  platform whose ``mqtt.port`` and ``mqtt.internal_port`` are free ports.
- :class:`PostgresInstance`: a throwaway cluster (``initdb`` + ``postgres``), run
  as the ``postgres`` user when the tests run as root.
- :class:`NatsInstance` and :class:`NatsCluster`: ``nats-server`` with JetStream,
  alone or as a cluster.
- :class:`SoftHsmToken`: a SoftHSM2 token and its ``pkcs11:`` URL (one per process).
"""

from tether.testing.engines import Engine, ProcessEngine, find_binary, free_port
from tether.testing.mosquitto import MosquittoInstance
from tether.testing.nats import NatsCluster, NatsInstance
from tether.testing.postgres import PostgresInstance, postgres_bin_dir
from tether.testing.softhsm import SoftHsmToken, softhsm_module

__all__ = [
    "Engine",
    "MosquittoInstance",
    "NatsCluster",
    "NatsInstance",
    "PostgresInstance",
    "ProcessEngine",
    "SoftHsmToken",
    "find_binary",
    "free_port",
    "postgres_bin_dir",
    "softhsm_module",
]
