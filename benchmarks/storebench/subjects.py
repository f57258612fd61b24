"""What each implementation offers the workloads, and the event every implementation writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

BackendName = Literal["sqlite", "postgresql"]
BACKENDS: Final[tuple[BackendName, ...]] = ("sqlite", "postgresql")

EVENT_TYPE: Final = "Deposited"
AGGREGATE_TYPE: Final = "Account"
EVENT_DATA: Final = {"amount": "100.00", "currency": "EUR", "note": "benchmark deposit"}
"""The data of every event (about 60 bytes of JSON), the same for the three implementations."""
EVENT_METADATA: Final = {"source": "bench"}


class Writer(Protocol):
    """Appends to one stream of its own, at the exact expected version each time."""

    def append(self, count: int) -> None:
        """Append ``count`` new events in one append (one transaction)."""
        ...

    def close(self) -> None:
        """Release what the writer holds (a connection of its own, for the raw baseline)."""
        ...


class Subject(Protocol):
    """One implementation on one fresh database (a new SQLite file or PostgreSQL schema)."""

    def writer(self, stream: str) -> Writer:
        """A writer for the stream named ``stream``, which it creates on its first append."""
        ...

    def load_stream(self, stream: str) -> int:
        """Read the whole stream, decoded; return the number of events."""
        ...

    def read_log(self, page_size: int) -> int:
        """Read the whole global log in pages of ``page_size``, decoded; return the count."""
        ...

    def close(self) -> None:
        """Close connections (the caller then drops the database objects)."""
        ...


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each workload does; ``FULL`` and ``QUICK`` are the two presets."""

    seconds: float
    """Minimum length of each timed section."""
    batch: int
    """Events per append in workload C."""
    stream_events: int
    """Events in the stream that workload D loads."""
    log_events: int
    """Events in the global log that workload E reads (the D stream is part of it)."""
    page_size: int
    """Events per ``read_all`` page in workload E."""
    writer_counts: tuple[int, ...]
    """Writer counts of workload B for cronica; the middle one is compared with the others."""


FULL: Final = Sizes(
    seconds=2.0,
    batch=100,
    stream_events=10_000,
    log_events=100_000,
    page_size=1_000,
    writer_counts=(1, 8, 32),
)
QUICK: Final = Sizes(
    seconds=0.3,
    batch=100,
    stream_events=1_000,
    log_events=10_000,
    page_size=1_000,
    writer_counts=(1, 8, 32),
)
