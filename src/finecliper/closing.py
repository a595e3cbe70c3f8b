"""A base class for objects that hold a resource until ``close()``: ``with Thing(...) as t:``."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """``with`` support for classes that define ``close()``; the ``with`` block closes them."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
