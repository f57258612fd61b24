"""Events: :class:`NewEvent` is about to be appended, :class:`RecordedEvent` was stored.

An event is a fact that happened, named in the past tense (``DepositMade``, never
``MakeDeposit``). Its envelope is self-contained: the seed's names ``eventId, eventType,
aggregateId, aggregateType, version, position, timestamp, data, metadata`` are its JSON form.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from cronica import _json
from cronica._validation import check_aggregate_id, check_aggregate_type, check_event_type
from cronica.errors import InvalidEventDataError, InvalidExpectedVersionError, InvalidInputError

__all__ = [
    "ANY",
    "EXISTS",
    "NO_STREAM",
    "AppendResult",
    "ExpectedVersion",
    "NewEvent",
    "RecordedEvent",
    "StreamInfo",
    "StreamState",
    "check_expected_version",
    "format_timestamp",
    "parse_timestamp",
]


class StreamState(enum.Enum):
    """Expectations about a stream that are not a version number."""

    ANY = "any"
    """Append whatever the stream's version (no concurrency check)."""
    NO_STREAM = "no_stream"
    """The stream must not exist yet."""
    EXISTS = "exists"
    """The stream must already exist, at any version."""


ANY: Final = StreamState.ANY
NO_STREAM: Final = StreamState.NO_STREAM
EXISTS: Final = StreamState.EXISTS

MAX_VERSION: Final = 2**31 - 1
"""The largest stream version (the seed's ``event_version INT``)."""

MAX_POSITION: Final = 2**63 - 1
"""The largest global position (a 64-bit integer)."""

ExpectedVersion = int | StreamState
"""An exact version (0 means "no stream yet"), or a :class:`StreamState`."""


def check_expected_version(expected: object) -> ExpectedVersion:
    """Return ``expected`` as an :data:`ExpectedVersion`, or raise ``InvalidExpectedVersionError``.

    Accepts the :class:`StreamState` members, their string names (``"any"``, ``"no_stream"``,
    ``"exists"``) and integers >= 0.
    """
    if isinstance(expected, StreamState):
        return expected
    if isinstance(expected, bool):
        raise InvalidExpectedVersionError(f"expected version must not be a boolean: {expected!r}")
    if isinstance(expected, int):
        if expected < 0:
            raise InvalidExpectedVersionError(
                f"expected version must be >= 0, 'any', 'no_stream' or 'exists', not {expected}"
            )
        if expected > MAX_VERSION:
            raise InvalidExpectedVersionError(
                f"expected version {expected} is over the largest stream version {MAX_VERSION}"
            )
        return expected
    if isinstance(expected, str):
        try:
            return StreamState(expected)
        except ValueError:
            pass
    raise InvalidExpectedVersionError(
        f"expected version must be an integer >= 0, 'any', 'no_stream' or 'exists', "
        f"not {expected!r}"
    )


def _coerce_event_id(event_id: uuid.UUID | str | None) -> uuid.UUID:
    if event_id is None:
        return uuid.uuid4()
    if isinstance(event_id, uuid.UUID):
        return event_id
    if isinstance(event_id, str):
        try:
            return uuid.UUID(event_id)
        except ValueError:
            pass
    raise InvalidInputError(f"event id must be a UUID or its string form, not {event_id!r}")


SCHEMA_VERSION_KEY: Final = "schemaVersion"
"""Metadata key holding an event's schema version; absent means version 1."""


def check_schema_version(metadata: dict[str, Any]) -> int:
    """The schema version in ``metadata`` (1 when absent); ``InvalidEventDataError`` when it
    is there but not a whole number of at least 1 (``2.0`` or ``"2"`` would read as version 1,
    and its upcasters would run on data already past them)."""
    version = metadata.get(SCHEMA_VERSION_KEY, 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidEventDataError(
            f"metadata {SCHEMA_VERSION_KEY} must be an integer >= 1, not {version!r}"
        )
    return version


@dataclass(frozen=True, slots=True, init=False)
class NewEvent:
    """An event about to be appended.

    ``data`` and ``metadata`` must be JSON objects (``dict`` with string keys); they are
    serialised when the event is created, so later changes to the dicts are not seen and
    invalid input fails here with an :class:`~cronica.errors.InvalidInputError`. Without an
    ``event_id`` a random UUID is drawn: keep the ``NewEvent`` to retry an append idempotently.

    >>> NewEvent("DepositMade", {"amount": "100.00"}).event_type
    'DepositMade'
    """

    event_type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    event_id: uuid.UUID
    data_json: bytes = field(repr=False, compare=False)
    metadata_json: bytes = field(repr=False, compare=False)

    def __init__(
        self,
        event_type: str,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        event_id: uuid.UUID | str | None = None,
    ) -> None:
        check_event_type(event_type)
        setattr_ = object.__setattr__
        setattr_(self, "event_type", event_type)
        setattr_(self, "event_id", _coerce_event_id(event_id))
        setattr_(self, "data_json", _json.dump_object(data, "data"))
        metadata_json = _json.dump_object({} if metadata is None else metadata, "metadata")
        setattr_(self, "metadata_json", metadata_json)
        # Keep the values exactly as they will be read back.
        setattr_(self, "data", _json.loads(self.data_json))
        setattr_(self, "metadata", _json.loads(self.metadata_json))
        check_schema_version(self.metadata)

    @property
    def size(self) -> int:
        """Bytes of serialised data and metadata: what the store's size limit counts."""
        return len(self.data_json) + len(self.metadata_json)


class RecordedEvent(NamedTuple):
    """An event as stored: immutable, with its stream version and global position.

    ``version`` is dense per stream, starting at 1. ``position`` strictly increases along the
    global log and need not be dense. ``data`` and ``metadata`` are plain dicts decoded from the
    stored JSON: treat them as read-only. (A named tuple: reads of the log build hundreds of
    thousands of these per second, and a tuple is about three times cheaper to make than a
    frozen dataclass.)
    """

    event_id: uuid.UUID
    event_type: str
    aggregate_id: str
    aggregate_type: str
    version: int
    position: int
    timestamp: datetime
    data: dict[str, Any]
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The seed's envelope with its JSON names (``eventId``, ``eventType``, ...)."""
        return {
            "eventId": str(self.event_id),
            "eventType": self.event_type,
            "aggregateId": self.aggregate_id,
            "aggregateType": self.aggregate_type,
            "version": self.version,
            "position": self.position,
            "timestamp": format_timestamp(self.timestamp),
            "data": self.data,
            "metadata": self.metadata,
        }

    def to_json(self) -> bytes:
        """The envelope as UTF-8 JSON."""
        return _json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, envelope: dict[str, Any]) -> RecordedEvent:
        """Read an envelope written by :meth:`to_dict`; raise ``InvalidInputError`` if malformed."""
        try:
            event = cls(
                event_id=uuid.UUID(str(envelope["eventId"])),
                event_type=check_event_type(envelope["eventType"]),
                aggregate_id=check_aggregate_id(envelope["aggregateId"]),
                aggregate_type=check_aggregate_type(envelope.get("aggregateType", "")),
                version=_whole(envelope["version"], "version", 1),
                position=_whole(envelope["position"], "position", 1),
                timestamp=parse_timestamp(str(envelope["timestamp"])),
                data=dict(envelope["data"]),
                metadata=dict(envelope.get("metadata") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidEventDataError(f"not an event envelope: {exc!r}") from exc
        return event

    @classmethod
    def from_json(cls, payload: bytes | str) -> RecordedEvent:
        """Parse :meth:`to_json` output."""
        try:
            envelope = _json.loads(payload)
        except ValueError as exc:
            raise InvalidEventDataError(f"not JSON: {exc}") from exc
        if not isinstance(envelope, dict):
            raise InvalidEventDataError("an event envelope must be a JSON object")
        return cls.from_dict(envelope)


def _whole(value: Any, what: str, minimum: int) -> int:
    """An envelope's integer field: a JSON integer (not true, 1.7 or "1") of at least
    ``minimum``, at most 64 bits."""
    if type(value) is not int or not minimum <= value <= MAX_POSITION:
        raise InvalidEventDataError(f"an envelope's {what} must be an integer >= {minimum}")
    return value


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append wrote: versions ``from_version..to_version`` and the last event's position."""

    from_version: int
    to_version: int
    position: int


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A stream's identity and progress."""

    aggregate_id: str
    aggregate_type: str
    version: int
    created: datetime
    updated: datetime


def format_timestamp(ts: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a ``Z``: ``2026-01-05T10:30:00.000000Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; a naive one is taken as UTC."""
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except ValueError as exc:
        raise InvalidInputError(f"not an RFC 3339 timestamp: {text!r}") from exc
    except OverflowError as exc:
        raise InvalidInputError(f"{text!r} is outside the years 1 to 9999 in UTC") from exc
