"""Platforms on either set of engines, for the end-to-end gate, door and API tests.

``embedded``: SQLite files in the data directory (the default). ``production``:
the entity and telemetry stores in fresh migrated PostgreSQL databases and the
streams in NATS JetStream under a prefix of the test's own, named in the data
directory's settings file, so every platform opened on that directory (another
process included) uses them. Both are torn down after the test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.pg import SETTINGS_FILE, fresh_database
from tests.stream.conftest import drop_prefix
from tether.store import migrations

PLATFORM_ENGINES = [
    "embedded",
    pytest.param("production", marks=[pytest.mark.engine("postgres"), pytest.mark.engine("nats")]),
]


@contextmanager
def platform_data_dir(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Path]:
    """``data_dir`` set up for the engines ``request.param`` names."""
    if request.param == "embedded":
        yield data_dir
        return
    if request.param != "production":
        raise AssertionError(f"no fixture for platform engines {request.param!r}")
    pg = request.getfixturevalue("postgres")
    server = request.getfixturevalue("nats")
    prefix = f"t{uuid.uuid4().hex[:12]}"
    with (
        fresh_database(pg, migrations.ENTITY) as entity,
        fresh_database(pg, migrations.TELEMETRY) as telemetry,
    ):
        data_dir.mkdir(parents=True, exist_ok=True)
        urls = {
            "entity_url": entity,
            "telemetry_url": telemetry,
            "stream_url": f"{server.url}/?prefix={prefix}",
        }
        (data_dir / SETTINGS_FILE).write_text(
            "".join(f"{key} = {json.dumps(url)}\n" for key, url in urls.items())
        )
        try:
            yield data_dir
        finally:
            drop_prefix(server.url, prefix)
