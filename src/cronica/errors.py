"""Every error cronica raises, as one tree.

::

    CronicaError
    ├── InvalidInputError              bad input; nothing was written
    │   ├── InvalidAggregateIdError
    │   ├── InvalidEventTypeError
    │   ├── InvalidAggregateTypeError
    │   ├── InvalidEventDataError      data/metadata not a JSON object, or does not serialise
    │   ├── EventTooLargeError
    │   ├── InvalidExpectedVersionError
    │   ├── InvalidReadError           a read's range or limit is out of bounds
    │   ├── InvalidURLError
    │   ├── UnknownEventTypeError      no event class is registered under that name
    │   └── UpcastingError             an upcaster chain has a gap or a doubled step
    ├── ConcurrencyError               the expected version did not hold (stream, expected, actual)
    ├── DuplicateEventError            an event id reused with different content or place
    ├── AggregateTypeMismatchError     appending with another aggregate type than the stream's
    ├── StreamNotFoundError
    ├── AppendOnlyViolationError       something tried to UPDATE or DELETE stored events
    ├── InvariantError                 a command broke a rule of the domain (nothing recorded)
    ├── ProjectionNotFoundError        no projection of that name is known
    ├── ProjectionStateError           an operator action that the projection's state forbids
    ├── LeaseLostError                 another runner took over a projection mid-batch
    └── StoreError                     the backend failed (connection lost, disk full, ...)
        ├── StoreUnavailableError      the backend cannot be reached
        ├── ReadModelError             a read-model database failed (SQL error, lost connection)
        │   └── ReadModelUnavailableError  the read-model database cannot be reached
        └── BusError                   the event bus (Redis, ...) failed or refused
            └── BusUnavailableError    the event bus cannot be reached

Database driver errors are translated at the backend edge and never reach callers untranslated;
the original exception is kept as ``__cause__``.
"""

from __future__ import annotations

from typing import Any


class CronicaError(Exception):
    """Root of every error raised by cronica."""


class InvalidInputError(CronicaError, ValueError):
    """The input is invalid; nothing was written."""


class InvalidAggregateIdError(InvalidInputError):
    """An aggregate id is empty, longer than 255 characters or holds control characters."""


class InvalidEventTypeError(InvalidInputError):
    """An event type is not a non-empty string of at most 100 printable characters."""


class InvalidAggregateTypeError(InvalidInputError):
    """An aggregate type is not a string of at most 100 printable characters."""


class InvalidEventDataError(InvalidInputError):
    """Event data or metadata is not a JSON object, or does not serialise to JSON."""


class EventTooLargeError(InvalidInputError):
    """An event's serialised data and metadata exceed the store's size limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"event is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class InvalidExpectedVersionError(InvalidInputError):
    """An expected version is negative or not one of the accepted values."""


class InvalidReadError(InvalidInputError):
    """A read's version range, position or limit is out of bounds."""


class InvalidURLError(InvalidInputError):
    """A store URL cannot be understood."""


class UnknownEventTypeError(InvalidInputError, LookupError):
    """No event class is registered under this type name."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"no event class is registered for event type {event_type!r}")
        self.event_type = event_type


class UpcastingError(InvalidInputError):
    """An upcaster chain is broken: a gap, two upcasters for one step, or an event older than
    the chain reaches."""

    def __init__(self, event_type: str, message: str) -> None:
        super().__init__(f"{event_type}: {message}")
        self.event_type = event_type


class ConcurrencyError(CronicaError):
    """The stream's version did not match the expected version; nothing was written."""

    def __init__(self, aggregate_id: str, expected: Any, actual: int) -> None:
        super().__init__(
            f"stream {aggregate_id!r}: expected version {_describe(expected)}, "
            f"actual version {actual}"
        )
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual


class DuplicateEventError(CronicaError):
    """An event id already exists with different content or in another place."""

    def __init__(self, event_id: str, reason: str) -> None:
        super().__init__(f"event id {event_id} already exists {reason}")
        self.event_id = event_id


class AggregateTypeMismatchError(CronicaError):
    """An append named another aggregate type than the stream already has."""

    def __init__(self, aggregate_id: str, expected: str, actual: str) -> None:
        super().__init__(f"stream {aggregate_id!r} has aggregate type {actual!r}, not {expected!r}")
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual


class StreamNotFoundError(CronicaError, LookupError):
    """The stream does not exist."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(f"stream {aggregate_id!r} does not exist")
        self.aggregate_id = aggregate_id


class AppendOnlyViolationError(CronicaError):
    """Stored events were about to be updated or deleted; the database refused."""


class InvariantError(CronicaError):
    """A command would break a rule of the domain (a negative balance, shipping an unpaid
    order); the aggregate recorded nothing. Domain code raises it or a subclass."""


class StoreError(CronicaError):
    """The backend failed; the operation may not have happened."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached."""


class ReadModelError(StoreError):
    """A read-model database failed: bad SQL in a projection, a constraint, a lost connection."""


class ReadModelUnavailableError(ReadModelError):
    """The read-model database cannot be reached; retrying later may work."""


class BusError(StoreError):
    """The event bus failed or refused a message."""


class BusUnavailableError(BusError):
    """The event bus cannot be reached; the relay retries with backoff."""


class ProjectionNotFoundError(CronicaError, LookupError):
    """No projection of that name is registered (or recorded in the read-model database)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no projection named {name!r}")
        self.name = name


class ProjectionStateError(CronicaError):
    """An operator action that the projection's current state does not allow (skipping an
    event of a projection that has not failed, say)."""


class LeaseLostError(CronicaError):
    """This runner no longer holds the projection's lease: another runner took over, and the
    batch in hand was rolled back."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the lease on projection {name!r} is held by another runner")
        self.name = name


def _describe(expected: Any) -> str:
    name = getattr(expected, "name", None)
    return name.lower() if isinstance(name, str) else str(expected)
