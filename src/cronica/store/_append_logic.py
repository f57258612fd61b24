"""The append algorithm for backends that run it in Python (memory, SQLite).

PostgreSQL runs the same steps in one server-side function (``store/postgres_schema.py``) so a
batch costs one round trip. The steps, in this order, for each request of a batch:

1. Idempotency: if any of the event ids is stored, the request is a retry. It succeeds with the
   original result when every id is stored, in the same stream, at consecutive versions, with
   the same type, data and metadata; otherwise it is a ``DuplicateEventError``.
2. Expectation: the stream's current version (0 when missing) must satisfy the expected version,
   and a given aggregate type must equal the stream's.
3. Write the events at versions ``current + 1 ...`` and move the stream's version, stamped with
   the clock, but never earlier than the stream's last write (``as_of`` reads rely on it).

Nothing is written before step 3, so a failed request leaves no trace.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cronica.errors import AggregateTypeMismatchError, ConcurrencyError, DuplicateEventError
from cronica.events import ANY, EXISTS, NO_STREAM, AppendResult, ExpectedVersion
from cronica.store.base import DEFAULT_AGGREGATE_TYPE, AppendOutcome, AppendRequest


@dataclass(frozen=True, slots=True)
class StoredIdentity:
    """What step 1 compares: an already-stored event's place and content."""

    event_id: uuid.UUID
    aggregate_id: str
    version: int
    position: int
    event_type: str
    data: dict[str, Any]
    metadata: dict[str, Any]


class AppendTransaction(Protocol):
    """The primitives a backend offers inside its write transaction."""

    def find_events(self, event_ids: list[uuid.UUID]) -> list[StoredIdentity]:
        """Stored events among ``event_ids`` (any order)."""
        ...

    def stream_head(self, aggregate_id: str) -> tuple[int, str, datetime] | None:
        """The stream's (version, aggregate type, last write), or None when it does not exist."""
        ...

    def write(
        self, request: AppendRequest, first_version: int, aggregate_type: str, now: datetime
    ) -> int:
        """Insert the request's events from ``first_version``, move the stream; last position."""
        ...


def expectation_holds(expected: ExpectedVersion, current: int | None) -> bool:
    """Whether a stream at ``current`` (None: missing) satisfies ``expected``."""
    if expected is ANY:
        return True
    if expected is NO_STREAM:
        return current is None
    if expected is EXISTS:
        return current is not None
    return expected == (current or 0)


def apply_request(
    tx: AppendTransaction, request: AppendRequest, now: datetime, *, optimistic: bool = False
) -> AppendOutcome:
    """Steps 1 to 3 for one request; returns the result or the error, never raises them.

    ``optimistic`` skips step 1 unless the request fails step 2: the caller relies on the
    database's unique event id to refuse a stored id on write, and must then roll back and run
    the request again without ``optimistic``.
    """
    if not optimistic:
        stored = tx.find_events([event.event_id for event in request.events])
        if stored:
            return _replayed_result(request, stored)
    head = tx.stream_head(request.aggregate_id)
    current = None if head is None else head[0]
    if head is not None and head[2] > now:
        now = head[2]  # a stream's timestamps never go back, even if the clock does
    failure: AppendOutcome | None = None
    stream_type = head[1] if head is not None else None
    if not expectation_holds(request.expected, current):
        failure = ConcurrencyError(request.aggregate_id, request.expected, current or 0)
    elif stream_type is not None and request.aggregate_type not in (None, stream_type):
        failure = AggregateTypeMismatchError(
            request.aggregate_id, str(request.aggregate_type), stream_type
        )
    if failure is not None:
        if optimistic:  # a failed retry of a written batch answers with the original result
            stored = tx.find_events([event.event_id for event in request.events])
            if stored:
                return _replayed_result(request, stored)
        return failure
    aggregate_type = stream_type or request.aggregate_type or DEFAULT_AGGREGATE_TYPE
    first_version = (current or 0) + 1
    position = tx.write(request, first_version, aggregate_type, now)
    return AppendResult(first_version, first_version + len(request.events) - 1, position)


def same_json(a: Any, b: Any) -> bool:
    """JSON equality as PostgreSQL's ``jsonb`` sees it: numbers compare by value (1 == 1.0), but
    a boolean is never a number (Python's ``True == 1`` does not hold here)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _replayed_result(request: AppendRequest, stored: list[StoredIdentity]) -> AppendOutcome:
    by_id = {row.event_id: row for row in stored}
    rows = []
    for event in request.events:
        row = by_id.get(event.event_id)
        if row is None:
            return DuplicateEventError(
                str(stored[0].event_id), "but other events of this append are new"
            )
        if row.aggregate_id != request.aggregate_id:
            return DuplicateEventError(str(event.event_id), f"in stream {row.aggregate_id!r}")
        if (
            row.event_type != event.event_type
            or not same_json(row.data, event.data)
            or not same_json(row.metadata, event.metadata)
        ):
            return DuplicateEventError(str(event.event_id), "with different content")
        rows.append(row)
    for earlier, later in itertools.pairwise(rows):
        if later.version != earlier.version + 1:
            return DuplicateEventError(str(later.event_id), "but not in the order of this append")
    return AppendResult(rows[0].version, rows[-1].version, rows[-1].position)
