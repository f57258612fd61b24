"""The package root exports exactly its public names (the API cannot drift unnoticed)."""

from __future__ import annotations

import cronica

PUBLIC = {
    "ANY", "DEFAULT_STORE_URL", "EXISTS", "NO_STREAM", "AggregateTypeMismatchError",
    "AppendOnlyViolationError", "AppendResult", "AsyncEventStore", "ConcurrencyError",
    "CronicaError", "DuplicateEventError", "EventStore", "EventTooLargeError", "ExpectedVersion",
    "HorizonHolder", "InvalidAggregateIdError", "InvalidAggregateTypeError",
    "InvalidEventDataError", "InvalidEventTypeError", "InvalidExpectedVersionError",
    "InvalidInputError", "InvalidReadError", "InvalidURLError", "MemoryEventStore", "NewEvent",
    "RecordedEvent", "SQLiteEventStore", "StoreError", "StoreStatus", "StoreUnavailableError",
    "StreamInfo", "StreamNotFoundError", "StreamState", "connect", "connect_async",
    "from_cloudevent", "recorded_from_cloudevent", "to_cloudevent",
    # the write model
    "Aggregate", "Audit", "CommandResult", "DomainEvent", "EventNameWarning", "EventRegistry",
    "InvariantError", "MemorySnapshotStore", "Repository", "Snapshot", "SnapshotStore",
    "UnknownEventTypeError", "UpcastingError", "Upcasters", "audit_context", "current_audit",
    # the read side
    "LeaseLostError", "Projection", "ProjectionNotFoundError", "ProjectionStateError",
    "ProjectionStatus", "Projector", "ReadModelDatabase", "ReadModelError",
    "ReadModelUnavailableError", "Subscription", "connect_read_models", "projection_as_of",
    "projection_status",
}  # fmt: skip


def test_all_is_exactly_the_public_names() -> None:
    assert len(cronica.__all__) == len(set(cronica.__all__))
    assert set(cronica.__all__) == PUBLIC
    public_attributes = {
        name
        for name in dir(cronica)
        if not name.startswith("_") and not isinstance(getattr(cronica, name), type(cronica))
    }
    assert public_attributes == PUBLIC


def test_every_error_descends_from_cronica_error() -> None:
    errors = [getattr(cronica, name) for name in PUBLIC if name.endswith("Error")]
    assert all(issubclass(error, cronica.CronicaError) for error in errors)
    assert issubclass(cronica.InvalidInputError, ValueError)


def test_postgres_store_is_importable_lazily() -> None:
    from cronica.store.postgres import PostgresEventStore

    assert cronica.PostgresEventStore is PostgresEventStore
