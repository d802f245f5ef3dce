"""Masking engines: Polars (the default, in-process) and PySpark (local or a cluster)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tether.masking.engines.base import MaskEngine
from tether.masking.errors import MaskingError

EngineFactory = Callable[..., MaskEngine]


def _polars(**options: Any) -> MaskEngine:
    from tether.masking.engines.polars_engine import PolarsEngine

    return PolarsEngine(**options)


def _spark(**options: Any) -> MaskEngine:
    from tether.masking.engines.spark_engine import SparkEngine

    return SparkEngine(**options)


ENGINES: dict[str, EngineFactory] = {"polars": _polars, "spark": _spark}


def make_engine(name: str, **options: Any) -> MaskEngine:
    """The engine registered under ``name``."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise MaskingError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}") from None
    return factory(**options)


__all__ = ["ENGINES", "MaskEngine", "make_engine"]
