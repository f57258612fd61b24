"""What the bank's projection handlers cost alone: each projection applied to pages of 10,000
events of the read-side benchmark's log, through a read-model transaction that does nothing
(no database), best of 5. Prints microseconds per event for each projection.

    .venv/bin/python benchmarks/probe_handlers.py [--events 50000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from bench_read_side import bank_log
from cronica.examples.bank_read_models import bank_projections
from cronica.projections.base import ProjectionWriter
from cronica.projections.runner import _relevant
from cronica.readmodels.base import ReadModelTransaction, Row

PAGE = 10_000


class NothingDone(ReadModelTransaction):
    """A transaction that takes every write and does nothing with it."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return 0

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        pass

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return []

    def insert_rows(self, table: str, columns: Sequence[str], rows: list[Sequence[Any]]) -> None:
        pass

    def update_rows(self, *args: Any) -> None:
        pass

    def savepoint(self) -> AbstractContextManager[None]:
        return nullcontext()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    events = [e for page in bank_log(args.events, 10_000) for e in page][10_000:]  # past openings
    for projection in bank_projections():
        names = {table: table for table in projection.tables}
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for start in range(0, len(events), PAGE):
                page = _relevant(projection, events[start : start + PAGE])
                projection.apply(ProjectionWriter(NothingDone(), names), page)
            best = min(best, time.perf_counter() - started)
        print(f"{projection.name:16} {best / len(events) * 1e6:.2f} µs/event")


if __name__ == "__main__":
    main()
