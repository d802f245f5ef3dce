"""Random interleavings of appends, duplicates, commits, resets and reopens.

Whatever the order, reading the stream back gives exactly the entries a model
says were appended (each key once for unique appends), in append order, and
consumer positions follow the forward-only rule.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stream.test_conformance import read_all
from tether.stream import StreamEntry, open_stream

KEYS = [f"SN{i}:{i * 7}" for i in range(10)]
HEADERS = st.dictionaries(st.sampled_from(["code", "door"]), st.text(max_size=4), max_size=2)


def entry(keyed: bool) -> st.SearchStrategy[StreamEntry]:
    key = st.sampled_from(KEYS) if keyed else st.none() | st.sampled_from(KEYS)
    return st.builds(StreamEntry, key, st.binary(max_size=6), HEADERS)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(entry(keyed=True), max_size=6), st.just(True)),
        st.tuples(st.just("append"), st.lists(entry(keyed=False), max_size=4), st.just(False)),
        st.tuples(
            st.sampled_from(["commit", "reset"]), st.sampled_from(["c1", "c2"]), st.floats(0, 1)
        ),
        st.tuples(st.just("reopen")),
    ),
    max_size=25,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_read_back_equals_the_model(stream_url: str, ops: list[tuple[Any, ...]]) -> None:
    name = f"p-{uuid.uuid4().hex[:12]}"  # a fresh stream per example, in the test's engine
    stream = open_stream(stream_url, name)
    expected: list[StreamEntry] = []
    keys: set[str] = set()
    positions: dict[str, int] = {}
    try:
        for op in ops:
            if op[0] == "append":
                batch, unique = op[1], op[2]
                slots = stream.append(batch, unique=unique)
                for item, slot in zip(batch, slots, strict=True):
                    if unique and item.key in keys:
                        assert slot is None
                        continue
                    assert slot == len(expected) + 1
                    expected.append(item)
                    if item.key is not None:
                        keys.add(item.key)
            elif op[0] in ("commit", "reset"):
                consumer, offset = op[1], int(op[2] * len(expected))
                if op[0] == "commit":
                    stream.commit(consumer, offset)
                    positions[consumer] = max(positions.get(consumer, 0), offset)
                else:
                    stream.reset(consumer, offset)
                    positions[consumer] = offset
            else:
                stream.close()
                stream = open_stream(stream_url, name)
        stored = read_all(stream, page=4)
        assert [s.offset for s in stored] == list(range(1, len(expected) + 1))
        assert [s.entry() for s in stored] == expected
        assert stream.last_offset() == len(expected)
        assert stream.contains(KEYS) == keys
        for consumer in ("c1", "c2"):
            assert stream.position(consumer) == positions.get(consumer, 0)
    finally:
        stream.close()
