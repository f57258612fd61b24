"""cronica: event sourcing for Python, from one SQLite file to PostgreSQL + Redis.

>>> import cronica
>>> store = cronica.connect("memory://")
>>> store.append("acc-1", [cronica.NewEvent("AccountCreated", {"owner": "Juan"})]).position
1
"""

from cronica.aggregates import Aggregate
from cronica.aio import AsyncEventStore, connect_async
from cronica.audit import Audit, audit_context, current_audit
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
    InvariantError,
    LeaseLostError,
    ProjectionNotFoundError,
    ProjectionStateError,
    ReadModelError,
    ReadModelUnavailableError,
    StoreError,
    StoreUnavailableError,
    StreamNotFoundError,
    UnknownEventTypeError,
    UpcastingError,
)
from cronica.event_types import DomainEvent, EventNameWarning, EventRegistry
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
from cronica.projections import (
    Projection,
    ProjectionStatus,
    Projector,
    projection_as_of,
    projection_status,
)
from cronica.readmodels import ReadModelDatabase, connect_read_models
from cronica.repository import CommandResult, Repository
from cronica.snapshots import MemorySnapshotStore, Snapshot, SnapshotStore
from cronica.store import EventStore, HorizonHolder, MemoryEventStore, SQLiteEventStore, StoreStatus
from cronica.subscriptions import Subscription
from cronica.upcasting import Upcasters

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "DEFAULT_STORE_URL",
    "EXISTS",
    "NO_STREAM",
    "Aggregate",
    "AggregateTypeMismatchError",
    "AppendOnlyViolationError",
    "AppendResult",
    "AsyncEventStore",
    "Audit",
    "CommandResult",
    "ConcurrencyError",
    "CronicaError",
    "DomainEvent",
    "DuplicateEventError",
    "EventNameWarning",
    "EventRegistry",
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
    "InvariantError",
    "LeaseLostError",
    "MemoryEventStore",
    "MemorySnapshotStore",
    "NewEvent",
    "Projection",
    "ProjectionNotFoundError",
    "ProjectionStateError",
    "ProjectionStatus",
    "Projector",
    "ReadModelDatabase",
    "ReadModelError",
    "ReadModelUnavailableError",
    "RecordedEvent",
    "Repository",
    "SQLiteEventStore",
    "Snapshot",
    "SnapshotStore",
    "StoreError",
    "StoreStatus",
    "StoreUnavailableError",
    "StreamInfo",
    "StreamNotFoundError",
    "StreamState",
    "Subscription",
    "UnknownEventTypeError",
    "Upcasters",
    "UpcastingError",
    "audit_context",
    "connect",
    "connect_async",
    "connect_read_models",
    "current_audit",
    "from_cloudevent",
    "projection_as_of",
    "projection_status",
    "recorded_from_cloudevent",
    "to_cloudevent",
]


def __getattr__(name: str) -> object:
    # PostgresEventStore needs the optional driver: import it only when asked for.
    if name == "PostgresEventStore":
        from cronica.store.postgres import PostgresEventStore

        return PostgresEventStore
    raise AttributeError(f"module 'cronica' has no attribute {name!r}")
