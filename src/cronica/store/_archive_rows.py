"""What the store's archive index holds: archived batches and the streams in them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

ARCHIVED_MARK: Final = -1
"""The version of the marker row a stream read appends when the stream has archived parts."""


@dataclass(frozen=True, slots=True)
class ArchiveBatch:
    """One archive batch: its Parquet file, the file's SHA-256, and who archived it and why."""

    batch: str
    file: str
    sha256: str
    events: int
    streams: int
    archived_at: datetime
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class ArchivedStream:
    """The versions ``first_version`` to ``last_version`` of a stream, archived together."""

    aggregate_id: str
    first_version: int
    last_version: int
    events: int


@dataclass(frozen=True, slots=True)
class ArchivedPart:
    """Where to read archived versions of a stream from (for a transparent read), and the
    file's checksum."""

    file: str
    sha256: str
    first_version: int
    last_version: int
