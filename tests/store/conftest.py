"""The telemetry store conformance suite runs once per engine in ``TELEMETRY_ENGINES``.

``telemetry_url`` gives each test a fresh, empty store. ``sqlite`` is a file in
the test's directory; ``postgres`` asks for the session's cluster with
``request.getfixturevalue("postgres")`` (so only its tests start it) and returns
the URL of a new database copied from a migrated template, dropped after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pg import fresh_database
from tether.store import migrations
from tether.store.telemetry import TelemetryEvent, TelemetryStore, open_telemetry_store

TELEMETRY_ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.engine("postgres"))]


@pytest.fixture(params=TELEMETRY_ENGINES)
def telemetry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh telemetry store, one per engine name."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'telemetry' / 'telemetry.sqlite'}"
    elif request.param == "postgres":
        with fresh_database(request.getfixturevalue("postgres"), migrations.TELEMETRY) as url:
            yield url
    else:
        raise AssertionError(f"no fixture for telemetry engine {request.param!r}")


@pytest.fixture
def store(telemetry_url: str) -> Iterator[TelemetryStore]:
    with open_telemetry_store(telemetry_url) as opened:
        yield opened


def event(
    serial: str = "SN1", seq: int | None = 1, ts: int = 1_000, **fields: Any
) -> TelemetryEvent:
    """An event with sensible defaults; the dedupe key is the seq unless given."""
    values: dict[str, Any] = {
        "tenant": "acme",
        "serial": serial,
        "device_class": "retail-cart",
        "site": "store-1",
        "dedupe_key": str(seq),
        "seq": seq,
        "type": "scan",
        "v": 1,
        "device_ts": ts,
        "ts": ts,
        "arrival": ts + 50,
        "clock_corrected": False,
        "fw": "1.4.2",
        "body": {"sku": f"{serial}-{seq}"},
    }
    values.update(fields)
    return TelemetryEvent(**values)
