"""Progress reporting for long runs: Rich bars on a terminal, nothing in tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

Advance = Callable[[int], None]


class Reporter(Protocol):
    """Receives progress: a task with an optional total, advanced by counts."""

    def task(self, description: str, total: int | None = None) -> AbstractContextManager[Advance]:
        """Open a task; the context yields a function that advances it."""
        ...


class NullReporter:
    """Reports nothing."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        yield lambda n: None


class RichReporter:
    """Shows each task as a Rich progress bar (a spinner when the total is unknown)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        columns = (
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as bar:
            tid = bar.add_task(description, total=total)
            yield lambda n: bar.advance(tid, n)
            if total is not None:
                bar.update(tid, completed=total)
