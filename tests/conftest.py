"""Engines for integration tests, started lazily: only a test that asks for one starts it.

Each engine is its own fixture, so a missing binary fails only the tests that need
it (with the Debian package to install), never the others, and never skips.
Tests that use an engine fixture are marked ``engine(name)`` automatically (tests
that start an engine themselves carry the marker explicitly), so
``pytest -m "not engine"`` runs just the unit tests on a machine without engines.

Fixtures that need a platform (the MQTT front door) live beside their tests, in
``tests/<area>/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tether.testing import NatsInstance, PostgresInstance, SoftHsmToken

# Fixture name -> engine name, for the automatic ``engine`` marker.
ENGINE_FIXTURES = {
    "postgres": "postgres",
    "nats": "nats",
    "softhsm": "softhsm",
    "mosquitto": "mosquitto",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, engine in ENGINE_FIXTURES.items():
            if fixture in names:
                item.add_marker(pytest.mark.engine(engine))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresInstance]:
    """A PostgreSQL cluster for the whole session; tests create their own databases."""
    with PostgresInstance() as instance:
        yield instance


@pytest.fixture(scope="session")
def nats() -> Iterator[NatsInstance]:
    """A single JetStream-enabled NATS server for the whole session."""
    with NatsInstance() as instance:
        yield instance


@pytest.fixture(scope="session")
def softhsm() -> Iterator[SoftHsmToken]:
    """The session's one SoftHSM2 token (SoftHSM reads its configuration once per process).

    Tests share it: give keys labels of their own and do not count on an empty token.
    """
    with SoftHsmToken(label="tether-test") as token:
        yield token
