"""The stream conformance suite runs once per engine named in ``STREAM_ENGINES``.

``stream_url`` gives each test a fresh, empty engine. Adding an engine is one
branch here: for example ``jetstream`` would ask for the session's NATS server
with ``request.getfixturevalue("nats")`` (so only its tests start it) and return
a URL with a namespace of its own; nothing else in the suite changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tether.stream import Stream, open_stream

STREAM_ENGINES = ["sqlite"]

OpenStream = Callable[..., Stream]


@pytest.fixture(params=STREAM_ENGINES)
def stream_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh stream engine, one per engine name."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'streams' / 'stream.sqlite'}"
    raise AssertionError(f"no fixture for stream engine {request.param!r}")


@pytest.fixture
def open_named(stream_url: str) -> Iterator[OpenStream]:
    """Open streams by name in the test's engine; all are closed after the test."""
    opened: list[Stream] = []

    def factory(name: str | None = None) -> Stream:
        stream = open_stream(stream_url, name or f"s-{uuid.uuid4().hex[:12]}")
        opened.append(stream)
        return stream

    yield factory
    for stream in opened:
        stream.close()


@pytest.fixture
def stream(open_named: OpenStream) -> Stream:
    """The ``events`` stream of a fresh engine."""
    return open_named("events")
