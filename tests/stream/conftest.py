"""The stream conformance suite runs once per engine named in ``STREAM_ENGINES``.

``stream_url`` gives each test a fresh, empty engine. Adding an engine is one
branch here: ``jetstream`` asks for the session's NATS server with
``request.getfixturevalue("nats")`` (so only its tests start it) and returns a URL
with a prefix of its own, whose streams and buckets are deleted after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import nats.js.errors
import pytest

from tether.stream import Stream, open_stream
from tether.testing import NatsInstance

STREAM_ENGINES = ["sqlite", "jetstream"]

OpenStream = Callable[..., Stream]


@pytest.fixture(params=STREAM_ENGINES)
def stream_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh stream engine, one per engine name."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'streams' / 'stream.sqlite'}"
    elif request.param == "jetstream":
        request.applymarker(pytest.mark.engine("nats"))
        server: NatsInstance = request.getfixturevalue("nats")
        prefix = f"t{uuid.uuid4().hex[:12]}"
        yield f"{server.url}/?prefix={prefix}"
        drop_prefix(server.url, prefix)
    else:
        raise AssertionError(f"no fixture for stream engine {request.param!r}")


def drop_prefix(server_url: str, prefix: str) -> None:
    """Delete the JetStream streams and buckets a test's prefix created."""

    async def drop() -> None:
        nc = await nats.connect(server_url)
        try:
            answer = await nc.request(
                "$JS.API.STREAM.NAMES", json.dumps({"subject": f"{prefix}.>"}).encode()
            )
            names = json.loads(answer.data).get("streams") or []
            js = nc.jetstream()
            for name in [*names, f"KV_{prefix}_keys", f"KV_{prefix}_consumers"]:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(name)
        finally:
            await nc.close()

    asyncio.run(drop())


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
