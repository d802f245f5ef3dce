"""Shared fixtures: a small synthetic dataset, a fixed key ring, one Spark session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tether.masking.engines import make_engine
from tether.masking.job import MaskRequest, run_mask
from tether.masking.rubric import Rubric, parse_rubric
from tether.masking.salts import KeyRing, SaltVersion
from tether.masking.sources import open_source
from tether.masking.synth import generate, write

ROWS = 240
DAY = date(2026, 3, 15)


def rubric_text() -> str:
    return resources.files("tether.masking").joinpath("rubrics/tool-telemetry.yaml").read_text()


def make_ring() -> KeyRing:
    return KeyRing(
        salts=(
            SaltVersion("2026q1", date(2026, 1, 1), date(2026, 4, 1), b"s1" * 16),
            SaltVersion("2026q2", date(2026, 4, 1), None, b"s2" * 16),
        ),
        token_key=b"t" * 32,
        mapping_key=b"m" * 32,
    )


@pytest.fixture(scope="session")
def rubric() -> Rubric:
    return parse_rubric(rubric_text(), origin="tool-telemetry.yaml")


@pytest.fixture(scope="session")
def ring() -> KeyRing:
    return make_ring()


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("raw")
    frame = generate(ROWS, seed=11)
    write(frame, d / "tools.csv")
    write(frame, d / "tools.parquet")
    return d


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    if shutil.which("java") is None:  # fail, never skip: the test script installs Java
        raise RuntimeError("PySpark needs Java: apt-get install default-jre-headless")
    from tether.masking.engines.spark_engine import spark_session

    session = spark_session("local[1]", app_name="tether-mask-tests")
    yield session
    session.stop()


def mask(
    source: Path, out: Path, rubric: Rubric, ring: KeyRing, engine: Any = None, **kw: Any
) -> dict[str, Any]:
    """Mask ``source`` into ``out`` on ``DAY`` in domain tool-telemetry (overridable)."""
    req = MaskRequest(
        source=open_source(str(source)),
        rubric=rubric,
        keys=ring,
        domain=kw.pop("domain", "tool-telemetry"),
        out=out,
        engine=engine or make_engine("polars"),
        at=kw.pop("at", DAY),
        **kw,
    )
    return run_mask(req)


@pytest.fixture(scope="session")
def polars_out(
    tmp_path_factory: pytest.TempPathFactory, raw_dir: Path, rubric: Rubric, ring: KeyRing
) -> Path:
    out = tmp_path_factory.mktemp("polars") / "tools-masked"
    mask(raw_dir / "tools.csv", out, rubric, ring)
    return out


@pytest.fixture(scope="session")
def spark_out(
    tmp_path_factory: pytest.TempPathFactory,
    raw_dir: Path,
    rubric: Rubric,
    ring: KeyRing,
    spark: Any,
) -> Path:
    out = tmp_path_factory.mktemp("spark") / "tools-masked"
    mask(raw_dir / "tools.csv", out, rubric, ring, engine=make_engine("spark", spark=spark))
    return out
