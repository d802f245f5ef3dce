"""Where rows come from: a small source port with CSV and Parquet adapters.

A source names its columns and can hand its rows to either engine, as a Polars
LazyFrame or a Spark DataFrame with the same schema. ``open_source`` picks the
adapter from a ``kind:location`` spec or from the file's suffix, through an
explicit registry: the telemetry store's adapter (another issue) registers itself
with :func:`register_source_kind` under ``telemetry`` and slots in unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.masking.errors import SourceError

if TYPE_CHECKING:
    import polars as pl
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession


class Source(ABC):
    """Rows to be masked."""

    kind: str = ""

    def __init__(self, location: str) -> None:
        self.location = location

    @abstractmethod
    def columns(self) -> list[str]:
        """Column names, in order."""

    @abstractmethod
    def scan(self) -> pl.LazyFrame:
        """The rows as a Polars LazyFrame."""

    @abstractmethod
    def spark_frame(self, spark: SparkSession) -> SparkFrame:
        """The rows as a Spark DataFrame with the same column types as :meth:`scan`."""

    def describe(self) -> dict[str, Any]:
        """What the decision log records about the source."""
        return {"kind": self.kind, "location": self.location}


class CsvSource(Source):
    """A CSV file with a header row. Types are inferred once, by Polars, for both engines."""

    kind = "csv"

    def __init__(self, location: str) -> None:
        super().__init__(location)
        if not Path(location).is_file():
            raise SourceError(f"CSV source {location} does not exist or is not a file")

    def _schema(self) -> pl.Schema:
        import polars as pl

        try:
            return pl.scan_csv(self.location, infer_schema_length=10_000).collect_schema()
        except pl.exceptions.PolarsError as exc:
            raise SourceError(f"cannot read CSV {self.location}: {exc}") from exc

    def columns(self) -> list[str]:
        return self._schema().names()

    def scan(self) -> pl.LazyFrame:
        import polars as pl

        return pl.scan_csv(self.location, schema=self._schema())

    def spark_frame(self, spark: SparkSession) -> SparkFrame:
        import polars as pl
        from pyspark.sql import types as T

        kinds: dict[Any, T.DataType] = {
            pl.Int64: T.LongType(),
            pl.Float64: T.DoubleType(),
            pl.Boolean: T.BooleanType(),
        }
        schema = T.StructType(
            [T.StructField(n, kinds.get(t, T.StringType())) for n, t in self._schema().items()]
        )
        return spark.read.csv(
            str(Path(self.location).resolve()),
            header=True,
            schema=schema,
            multiLine=True,
            escape='"',
            mode="FAILFAST",
        )


class ParquetSource(Source):
    """A Parquet file, or a directory of Parquet part files."""

    kind = "parquet"

    def __init__(self, location: str) -> None:
        super().__init__(location)
        p = Path(location)
        if not p.exists():
            raise SourceError(f"Parquet source {location} does not exist")
        if p.is_dir() and not any(p.glob("*.parquet")):
            raise SourceError(f"Parquet source {location} is a directory with no .parquet files")

    def _pattern(self) -> str:
        p = Path(self.location)
        return str(p / "*.parquet") if p.is_dir() else str(p)

    def columns(self) -> list[str]:
        return self.scan().collect_schema().names()

    def scan(self) -> pl.LazyFrame:
        import polars as pl

        return pl.scan_parquet(self._pattern())

    def spark_frame(self, spark: SparkSession) -> SparkFrame:
        return spark.read.parquet(str(Path(self.location).resolve()))


SourceFactory = Callable[[str], Source]
_KINDS: dict[str, SourceFactory] = {"csv": CsvSource, "parquet": ParquetSource}


def register_source_kind(kind: str, factory: SourceFactory) -> None:
    """Make ``kind:location`` specs open with ``factory`` (e.g. the telemetry store)."""
    _KINDS[kind] = factory


def source_kinds() -> list[str]:
    """The registered kinds."""
    return sorted(_KINDS)


def open_source(spec: str) -> Source:
    """Open ``kind:location``, or a path whose suffix (or directory) says its kind."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in _KINDS:
        return _KINDS[kind](rest)
    p = Path(spec)
    if p.suffix.lower() == ".csv":
        return CsvSource(spec)
    if p.suffix.lower() == ".parquet" or p.is_dir():
        return ParquetSource(spec)
    raise SourceError(
        f"cannot tell what kind of source {spec!r} is; name it as KIND:LOCATION with KIND one "
        f"of {', '.join(source_kinds())}"
    )
