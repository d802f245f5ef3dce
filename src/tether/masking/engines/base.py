"""The engine port: mask a source by a plan into a directory of Parquet files."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from tether.masking.plan import MaskPlan
from tether.masking.progress import Reporter
from tether.masking.sources import Source


class MaskEngine(ABC):
    """Turns a source into masked Parquet part files, the same way on every engine.

    Output contract: the source's columns in order, each treated by its rule, then
    ``_mask_run_id``, ``_mask_rubric`` and ``_mask_redactions``. Digests are 64
    lowercase hex digits, tokens ``tok_<tag>_<20 hex>``, grid coordinates doubles,
    hours UTC microsecond timestamps, bins and quartiles strings.
    """

    name: str = ""

    @abstractmethod
    def run(
        self, source: Source, plan: MaskPlan, data_dir: Path, reporter: Reporter
    ) -> dict[str, list[float]]:
        """Write the masked rows as ``data_dir/*.parquet``.

        Returns the quartile boundaries computed for each quartile column, for the
        decision log. Raises a MaskingError subclass on any refusal or failure.
        """
