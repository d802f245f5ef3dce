"""The Polars engine's generalisers agree with the one-value-at-a-time reference."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.masking import generalise as ref
from tether.masking.engines.polars_engine import _generalise
from tether.masking.rubric import parse_rubric

RUBRIC = parse_rubric(
    """
rubric: g
version: 1
columns:
  lat: {bucket: sensitive, generalise: gps_grid}
  coarse: {bucket: sensitive, generalise: gps_grid, step: 0.1}
  age: {bucket: sensitive, generalise: age_bin}
  born: {bucket: sensitive, generalise: birth_date_bin, width: 10}
  at: {bucket: sensitive, generalise: hour}
  addr: {bucket: sensitive, generalise: address_city_region}
  pay: {bucket: sensitive, generalise: quartile}
"""
)


def run(name: str, values: list[object], dtype: pl.DataType) -> list[object]:
    series, _ = _generalise(pl.Series(name, values, dtype=dtype), RUBRIC.columns[name])
    return series.to_list()


coords = st.floats(min_value=-180, max_value=180, allow_nan=False)


@given(st.lists(coords, min_size=1, max_size=30))
def test_gps_grid_matches_reference_and_lands_on_the_grid(values: list[float]) -> None:
    got = run("lat", list(values), pl.Float64())
    assert got == [ref.gps_grid(v) for v in values]
    assert all(ref.on_grid(g) for g in got if g is not None)
    assert all(0 <= v - g < 0.01 + 1e-9 for v, g in zip(values, got, strict=True))
    assert run("coarse", list(values), pl.Float64()) == [ref.gps_grid(v, 0.1) for v in values]


@given(st.lists(st.one_of(st.none(), st.integers(0, 120)), min_size=1, max_size=30))
def test_age_bins(values: list[int | None]) -> None:
    assert run("age", list(values), pl.Int64()) == [ref.age_bin(v) for v in values]


def test_birth_date_bins_from_strings_and_dates() -> None:
    assert run("born", ["1987-06-02", "2001-01-01", None, "garbage"], pl.String()) == [
        "1980-1989",
        "2000-2009",
        None,
        None,
    ]
    assert ref.birth_date_bin("1987-06-02", 5) == "1985-1989"


@settings(max_examples=50)
@given(
    st.lists(
        st.datetimes(
            min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
        ),
        min_size=1,
        max_size=20,
    )
)
def test_hours(values: list[datetime]) -> None:
    texts = [v.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for v in values]
    expected = [ref.hour(v) for v in values]
    assert run("at", texts, pl.String()) == expected
    assert run("at", list(values), pl.Datetime("us", "UTC")) == expected


def test_addresses() -> None:
    values = [
        "12 Elm Rd, Dayton, OH 45402",
        "Unit 4, 90 Harbor Way, Tacoma, WA 98402-1100",
        "1 Main Street, New York, New York 10001",
        "no commas here",
        None,
    ]
    expected = ["Dayton, OH", "Tacoma, WA", "New York, New York", None, None]
    assert run("addr", values, pl.String()) == expected
    assert [ref.address_city_region(v) for v in values] == expected


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=40))
def test_quartiles(values: list[float]) -> None:
    series, bounds = _generalise(pl.Series("pay", values), RUBRIC.columns["pay"])
    expected_bounds = ref.quartile_bounds(values)
    assert bounds is not None
    assert all(
        math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
        for a, b in zip(bounds, expected_bounds, strict=True)
    )
    assert series.to_list() == [ref.quartile(v, tuple(bounds)) for v in values]  # type: ignore[arg-type]
