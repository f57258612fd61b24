"""cronica: event sourcing for Python, from one SQLite file to PostgreSQL + Redis.

>>> import cronica
>>> store = cronica.connect("memory://")
>>> store.append("acc-1", [cronica.NewEvent("AccountCreated", {"owner": "Juan"})]).position
1
"""

from cronica.aio import AsyncEventStore, connect_async
from cronica.cloudevents import from_cloudevent, recorded_from_cloudevent, to_cloudevent
from cronica.connect import DEFAULT_STORE_URL, connect
from cronica.errors import (
    AggregateTypeMismatchError,
    AppendOnlyViolationError,
    ConcurrencyError,
    CronicaError,
    DuplicateEventError,
    EventTooLargeError,
    InvalidAggregateIdError,
    InvalidAggregateTypeError,
    InvalidEventDataError,
    InvalidEventTypeError,
    InvalidExpectedVersionError,
    InvalidInputError,
    InvalidReadError,
    InvalidURLError,
    StoreError,
    StoreUnavailableError,
    StreamNotFoundError,
)
from cronica.events import (
    ANY,
    EXISTS,
    NO_STREAM,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamInfo,
    StreamState,
)
from cronica.store import EventStore, HorizonHolder, MemoryEventStore, SQLiteEventStore, StoreStatus

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "DEFAULT_STORE_URL",
    "EXISTS",
    "NO_STREAM",
    "AggregateTypeMismatchError",
    "AppendOnlyViolationError",
    "AppendResult",
    "AsyncEventStore",
    "ConcurrencyError",
    "CronicaError",
    "DuplicateEventError",
    "EventStore",
    "EventTooLargeError",
    "ExpectedVersion",
    "HorizonHolder",
    "InvalidAggregateIdError",
    "InvalidAggregateTypeError",
    "InvalidEventDataError",
    "InvalidEventTypeError",
    "InvalidExpectedVersionError",
    "InvalidInputError",
    "InvalidReadError",
    "InvalidURLError",
    "MemoryEventStore",
    "NewEvent",
    "RecordedEvent",
    "SQLiteEventStore",
    "StoreError",
    "StoreStatus",
    "StoreUnavailableError",
    "StreamInfo",
    "StreamNotFoundError",
    "StreamState",
    "connect",
    "connect_async",
    "from_cloudevent",
    "recorded_from_cloudevent",
    "to_cloudevent",
]


def __getattr__(name: str) -> object:
    # PostgresEventStore needs the optional driver: import it only when asked for.
    if name == "PostgresEventStore":
        from cronica.store.postgres import PostgresEventStore

        return PostgresEventStore
    raise AttributeError(f"module 'cronica' has no attribute {name!r}")
