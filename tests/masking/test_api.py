from __future__ import annotations

import subprocess
import sys

import tether.masking


def test_public_api_is_curated() -> None:
    assert sorted(tether.masking.__all__) == tether.masking.__all__
    for name in tether.masking.__all__:
        assert hasattr(tether.masking, name), name


def test_importing_the_package_loads_no_engine() -> None:
    code = (
        "import sys, tether.masking; "
        "print(sorted(m for m in ('polars', 'pyspark', 'presidio_analyzer', 'spacy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
