"""The context-manager shape of every object that holds resources: ``with x:`` closes it."""

from __future__ import annotations

from typing import Self


class Closing:
    """``with obj:`` returns ``obj`` and calls :meth:`close` on the way out."""

    def close(self) -> None:
        """Release what this object holds (nothing by default)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
