"""An in-memory map of device serial to current owner, kept honest across processes.

The store behind it keeps a change counter (its *bond generation*) and, on every
bond, the generation that last touched it. A lookup costs a dictionary read;
at most every ``poll_seconds`` it reads the generation and, when it moved,
forgets exactly the serials whose bonds changed since the last look. Changes
made through this process are forgotten at once with ``forget``.

A lookup that raced a change (it read the database before the change landed and
would store the old owner after) is detected by an epoch that grows on every
invalidation and is not cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

_MISSING = object()


class OwnerCache:
    """Serial to owner (or None), invalidated by a generation counter."""

    def __init__(
        self,
        load: Callable[[str], str | None],
        generation: Callable[[], int],
        changed_since: Callable[[int], Iterable[str]],
        poll_seconds: float = 1.0,
        max_entries: int = 1_000_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._generation_of_store = generation
        self._changed_since = changed_since
        self.poll_seconds = poll_seconds
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._owners: dict[str, str | None] = {}
        self._epoch = 0
        self._generation = generation()
        self._checked_at = monotonic()

    def owner(self, serial: str) -> str | None:
        self.refresh()
        hit = self._owners.get(serial, _MISSING)
        if hit is not _MISSING:
            return hit  # type: ignore[return-value]
        epoch = self._epoch
        owner = self._load(serial)
        with self._lock:
            if epoch == self._epoch:
                if len(self._owners) >= self.max_entries:
                    self._owners.clear()
                self._owners[serial] = owner
        return owner

    def refresh(self, force: bool = False) -> None:
        """Look for changes made elsewhere, when the poll interval has passed (or now)."""
        now = self._monotonic()
        if not force and now - self._checked_at < self.poll_seconds:
            return
        with self._lock:
            self._checked_at = now
            since = self._generation
        latest = self._generation_of_store()
        if latest == since:
            return
        changed = set(self._changed_since(since))
        with self._lock:
            self._epoch += 1
            for serial in changed:
                self._owners.pop(serial, None)
            self._generation = max(self._generation, latest)

    def forget(self, serials: Iterable[str]) -> None:
        """Drop cached owners now, after a change made through this process."""
        with self._lock:
            self._epoch += 1
            for serial in serials:
                self._owners.pop(serial, None)

    def __len__(self) -> int:
        return len(self._owners)
