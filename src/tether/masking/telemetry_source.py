"""tether's telemetry store as a masking source: ``telemetry:<store URL>?tenant=T&...``.

One row per stored event. The envelope comes first, then the body's fields
flattened into columns::

    serial  seq  event_ts  type  site  fw  clock_corrected  <body fields, sorted by name>

``event_ts`` is the store's corrected time ``ts`` as a UTC timestamp. Body fields
are the union over the selected events, in name order (so a narrower selection
never reorders the columns it shares with a wider one); an event without a
field has null there. A field's type is the same on every row: booleans,
integers (64-bit) and floats (integers mixed with floats become floats) and
strings keep their type; a field holding objects, lists or mixed kinds becomes
a string column in which strings stay as they are and everything else is
compact JSON (keys sorted).

A body field named like an envelope column (a class's site field is copied
out of the body into ``site``) is dropped when it equals the envelope value on
every selected event that has it; otherwise it is kept as ``body_<name>`` so
nothing is silently lost.

The selection is read through the store port's ``range`` in pages ordered by
time, so no single call returns more than one page. Rows are then held in
memory as one columnar frame (a few hundred bytes per event), which both engines
read: Polars as a LazyFrame, Spark as a DataFrame with the same types built from
Arrow on the driver.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from tether.errors import TetherError
from tether.masking.errors import SourceError
from tether.masking.sources import Source, register_source_kind
from tether.store.telemetry.base import TelemetryEvent, TelemetryStore, open_telemetry_store

if TYPE_CHECKING:
    import polars as pl
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

KIND = "telemetry"
PAGE_SIZE = 10_000
# Events sharing one millisecond are read in one call, up to this many.
MAX_SAME_MS = 1_000_000
ENVELOPE = ("serial", "seq", "event_ts", "type", "site", "fw", "clock_corrected")
_ENVELOPE_SET = frozenset(ENVELOPE)
_PARAMS = ("tenant", "class", "site", "type", "since", "until")
_END_OF_TIME_MS = (1 << 63) - 1
_INT64 = (-(1 << 63), (1 << 63) - 1)
_EXAMPLE = "telemetry:sqlite:///.tether/telemetry.sqlite?tenant=acme&class=power-tool"
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def _usage(problem: str) -> SourceError:
    return SourceError(
        f"telemetry source: {problem}. Write telemetry:<store URL>?tenant=T[&class=C][&site=S]"
        "[&type=E[,E2]][&since=ISO8601][&until=ISO8601] (since inclusive, until exclusive, UTC "
        f"unless an offset is given), e.g. {_EXAMPLE}"
    )


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` password replaced by ``***``."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def _instant(name: str, text: str) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise _usage(
            f"{name}={text!r} is not an ISO 8601 time (e.g. 2026-05-01 or 2026-05-01T08:00:00Z)"
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    return int(when.timestamp() * 1000)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@dataclass(frozen=True)
class Selection:
    """What a ``telemetry:`` spec selects from which store."""

    store_url: str
    tenant: str
    device_class: str | None = None
    site: str | None = None
    types: tuple[str, ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None

    @classmethod
    def parse(cls, location: str) -> Selection:
        """Parse ``<store URL>?tenant=T&...``; the store's own URL parameters pass through."""
        base, _, query = location.partition("?")
        if not base:
            raise _usage("no store URL")
        if ":" not in base:
            raise _usage(f"{base!r} is not a store URL (it has no scheme such as sqlite:///)")
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            raise _usage(f"cannot read the parameters {query!r}") from None
        ours: dict[str, str] = {}
        theirs: list[tuple[str, str]] = []
        for key, value in pairs:
            if key not in _PARAMS:
                theirs.append((key, value))
                continue
            if key in ours:
                raise _usage(f"{key}= is given twice")
            if not value.strip():
                raise _usage(f"{key}= is empty")
            ours[key] = value.strip()
        if "tenant" not in ours:
            raise _usage("tenant= is missing; an export never crosses tenants")
        since = _instant("since", ours["since"]) if "since" in ours else None
        until = _instant("until", ours["until"]) if "until" in ours else None
        if since is not None and until is not None and since >= until:
            raise _usage(f"since={ours['since']} is not before until={ours['until']}")
        types = tuple(sorted({t.strip() for t in ours.get("type", "").split(",") if t.strip()}))
        url = f"{base}?{urlencode(theirs)}" if theirs else base
        return cls(url, ours["tenant"], ours.get("class"), ours.get("site"), types, since, until)

    def describe(self) -> dict[str, Any]:
        """The selection for the decision log (no secrets)."""
        return {
            "store": redact_url(self.store_url),
            "tenant": self.tenant,
            "class": self.device_class,
            "site": self.site,
            "type": list(self.types) or None,
            "since": _iso(self.since_ms),
            "until": _iso(self.until_ms),
        }

    def what(self) -> str:
        """The selection in words, for error messages."""
        parts = [f"tenant {self.tenant!r}"]
        if self.device_class:
            parts.append(f"class {self.device_class!r}")
        if self.site:
            parts.append(f"site {self.site!r}")
        if self.types:
            parts.append(f"type {','.join(self.types)}")
        if self.since_ms is not None or self.until_ms is not None:
            parts.append(
                f"from {_iso(self.since_ms) or 'the start'} to {_iso(self.until_ms) or 'now'}"
            )
        return ", ".join(parts)


def open_store(url: str) -> TelemetryStore:
    """Open an existing telemetry store for reading; SourceError if it is not there."""
    scheme = url.partition(":")[0]
    if scheme == "sqlite":
        # Opening an SQLite store creates it; a source must not export an empty new file.
        from tether.store.sqlitedb import parse_url

        try:
            path, _ = parse_url(url, "telemetry store")
        except TetherError as exc:
            raise _usage(str(exc)) from exc
        if not path.is_file():
            where = path if path.is_absolute() else f"{path} (relative to {Path.cwd()})"
            raise SourceError(
                f"telemetry source: no telemetry store at {where}. Check the path in {url!r}: "
                "sqlite:///relative/path or sqlite:////absolute/path, the file tether's "
                "projector writes (settings: telemetry URL)"
            )
    try:
        return open_telemetry_store(url)
    except TetherError as exc:
        raise SourceError(
            redact_url(f"telemetry source: cannot open the telemetry store {url!r}: {exc}")
        ) from exc


def read_events(
    store: TelemetryStore, sel: Selection, page_size: int = PAGE_SIZE
) -> Iterator[list[TelemetryEvent]]:
    """The selected events in pages, oldest first; no call to the store exceeds a page.

    Pages are cut by time: a full page ends at its last millisecond, which the next
    page starts from, so an event is read exactly once. A millisecond holding more
    than a page of events is read on its own, in one call.
    """
    if page_size < 2:
        raise ValueError(f"page_size must be at least 2, got {page_size}")
    start = sel.since_ms if sel.since_ms is not None else -_END_OF_TIME_MS
    end = sel.until_ms if sel.until_ms is not None else _END_OF_TIME_MS
    keep = set(sel.types)

    def fetch(lo: int, hi: int, limit: int) -> list[TelemetryEvent]:
        try:
            return store.range(sel.tenant, lo, hi, sel.device_class, sel.site, limit=limit)
        except TetherError as exc:
            raise SourceError(f"telemetry source: reading {sel.what()} failed: {exc}") from exc

    while start < end:
        page = fetch(start, end, page_size)
        if len(page) < page_size:
            done, start = page, end
        elif page[0].ts != page[-1].ts:
            last = page[-1].ts
            done, start = [e for e in page if e.ts < last], last
        else:
            done, start = _one_millisecond(fetch, page[0].ts, page_size), page[0].ts + 1
        if keep:
            done = [e for e in done if e.type in keep]
        if done:
            yield done


def _one_millisecond(
    fetch: Callable[[int, int, int], list[TelemetryEvent]], ms: int, page_size: int
) -> list[TelemetryEvent]:
    limit = page_size
    while True:
        limit = min(limit * 4, MAX_SAME_MS + 1)
        events = fetch(ms, ms + 1, limit)
        if len(events) < limit:
            return events
        if limit > MAX_SAME_MS:
            raise SourceError(
                f"telemetry source: more than {MAX_SAME_MS} events share the millisecond "
                f"{_iso(ms)}; the store's clock correction looks broken. Narrow the "
                "selection with class=, site= or since=/until="
            )


# Kinds of a body field's values, and the column type they make together.
_BOOL, _INT, _FLOAT, _STR, _JSON_KIND = "bool", "int", "float", "str", "json"


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, int):
        return _INT if _INT64[0] <= value <= _INT64[1] else _JSON_KIND
    if isinstance(value, float):
        return _FLOAT
    if isinstance(value, str):
        return _STR
    return _JSON_KIND


def _column_kind(kinds: set[str]) -> str:
    if not kinds:
        return _STR
    if len(kinds) == 1:
        return next(iter(kinds))
    return _FLOAT if kinds == {_INT, _FLOAT} else _JSON_KIND


def _render(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _JSON(value)


def _dtype(kind: str) -> Any:
    import polars as pl

    return {_BOOL: pl.Boolean, _INT: pl.Int64, _FLOAT: pl.Float64}.get(kind, pl.String)


def _series(name: str, values: list[Any], kind: str) -> pl.Series:
    import polars as pl

    if kind == _JSON_KIND:
        return pl.Series(name, [_render(v) for v in values], dtype=pl.String)
    return pl.Series(name, values, dtype=_dtype(kind), strict=kind != _FLOAT)


def _conform(series: pl.Series, kind: str) -> pl.Series:
    """A page's column in the type the whole selection gives the field."""
    import polars as pl

    target = _dtype(kind)
    if series.dtype == target:
        return series
    if kind == _FLOAT:
        return series.cast(pl.Float64)
    return pl.Series(series.name, [_render(v) for v in series.to_list()], dtype=pl.String)


@dataclass
class _Body:
    """Body fields seen so far: per field, its kinds and its column on each page."""

    kinds: dict[str, set[str]] = field(default_factory=dict)
    pages: list[dict[str, pl.Series]] = field(default_factory=list)
    # Envelope-named body fields (as body_<name>), and those differing from the envelope.
    renamed: set[str] = field(default_factory=set)
    differs: set[str] = field(default_factory=set)

    def add(self, events: list[TelemetryEvent]) -> None:
        n = len(events)
        cols: dict[str, list[Any]] = {}
        for i, e in enumerate(events):
            for key, value in e.body.items():
                name = key
                if key in _ENVELOPE_SET:
                    name = f"body_{key}"
                    self.renamed.add(name)
                    if not _same(value, _envelope_value(e, key)):
                        self.differs.add(name)
                cols.setdefault(name, [None] * n)[i] = value
        page: dict[str, pl.Series] = {}
        for name, values in cols.items():
            kinds = {k for k in map(_kind, values) if k is not None}
            self.kinds.setdefault(name, set()).update(kinds)
            page[name] = _series(name, values, _column_kind(kinds))
        self.pages.append(page)

    def names(self) -> list[str]:
        """The body's columns, by name: copies of the envelope are left out."""
        return sorted(n for n in self.kinds if n not in self.renamed or n in self.differs)

    def columns(self, page: int, n: int) -> list[pl.Series]:
        import polars as pl

        out: list[pl.Series] = []
        for name in self.names():
            kind = _column_kind(self.kinds[name])
            s = self.pages[page].get(name)
            out.append(
                _conform(s, kind) if s is not None else pl.Series(name, [None] * n, _dtype(kind))
            )
        return out


def _envelope_value(e: TelemetryEvent, name: str) -> Any:
    return e.ts if name == "event_ts" else getattr(e, name)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(a == b)


def _envelope(events: list[TelemetryEvent]) -> list[pl.Series]:
    import polars as pl

    return [
        pl.Series("serial", [e.serial for e in events], dtype=pl.String),
        pl.Series("seq", [e.seq for e in events], dtype=pl.Int64),
        pl.Series("event_ts", [e.ts * 1000 for e in events], dtype=pl.Int64).cast(
            pl.Datetime("us", "UTC")
        ),
        pl.Series("type", [e.type for e in events], dtype=pl.String),
        pl.Series("site", [e.site for e in events], dtype=pl.String),
        pl.Series("fw", [e.fw for e in events], dtype=pl.String),
        pl.Series("clock_corrected", [e.clock_corrected for e in events], dtype=pl.Boolean),
    ]


def events_frame(pages: Iterable[list[TelemetryEvent]]) -> pl.DataFrame:
    """The rows of the selected events, one per event, as described in the module doc."""
    import polars as pl

    body = _Body()
    envelopes: list[pl.DataFrame] = []
    for events in pages:
        envelopes.append(pl.DataFrame(_envelope(events)))
        body.add(events)
    if not envelopes:
        return pl.DataFrame(_envelope([]))
    frames = [env.hstack(body.columns(i, env.height)) for i, env in enumerate(envelopes)]
    return pl.concat(frames, how="vertical")


def spark_schema(schema: pl.Schema) -> Any:
    """The Spark schema with the same column types as a Polars schema of this source."""
    import polars as pl
    from pyspark.sql import types as T

    def one(dtype: Any) -> T.DataType:
        if dtype == pl.Boolean:
            return T.BooleanType()
        if dtype == pl.Int64:
            return T.LongType()
        if dtype == pl.Float64:
            return T.DoubleType()
        if isinstance(dtype, pl.Datetime):
            return T.TimestampType()
        return T.StringType()

    return T.StructType([T.StructField(n, one(t), nullable=True) for n, t in schema.items()])


class TelemetrySource(Source):
    """Events of one tenant from tether's telemetry store, one row per event."""

    kind = KIND

    def __init__(self, location: str, page_size: int = PAGE_SIZE) -> None:
        super().__init__(location)
        self.selection = Selection.parse(location)
        self.page_size = page_size
        self._frame: pl.DataFrame | None = None

    def frame(self) -> pl.DataFrame:
        """The selected rows, read from the store once and kept."""
        if self._frame is None:
            sel = self.selection
            with open_store(sel.store_url) as store:
                frame = events_frame(read_events(store, sel, self.page_size))
                if frame.height == 0:
                    try:
                        held = store.count(sel.tenant)
                    except TetherError:
                        held = -1
                    hint = (
                        f"the store holds {held} event(s) for tenant {sel.tenant!r}"
                        if held >= 0
                        else "the store could not count the tenant's events"
                    )
                    raise SourceError(
                        f"telemetry source: no events match {sel.what()} in "
                        f"{redact_url(sel.store_url)} ({hint}). Check tenant=, class=, site=, "
                        "type= and since=/until="
                    )
            self._frame = frame
        return self._frame

    def columns(self) -> list[str]:
        return self.frame().columns

    def scan(self) -> pl.LazyFrame:
        return self.frame().lazy()

    def spark_frame(self, spark: SparkSession) -> SparkFrame:
        frame = self.frame()
        return spark.createDataFrame(frame.to_arrow(), schema=spark_schema(frame.schema))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "location": redact_url(self.location),
            **self.selection.describe(),
        }


register_source_kind(KIND, TelemetrySource)
