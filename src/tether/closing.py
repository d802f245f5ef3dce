"""The context-manager half every port with a ``close()`` shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Closeable(ABC):
    """``with port as p: ...`` closes the port on the way out."""

    @abstractmethod
    def close(self) -> None:
        """Release what the object holds; idempotent. It is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
