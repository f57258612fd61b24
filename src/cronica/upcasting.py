"""Schema evolution: upcaster chains that bring stored events to the code's schema version.

Stored events are never rewritten (the log is append-only); instead every read upgrades old
events on the fly, one step at a time. An upcaster takes an event type's data at schema version
``n`` and returns it at ``n + 1``; the chain for a type must be unbroken up to the version the
code registers. The seed's example (1.7.3), ``name`` split into ``firstName`` and ``lastName``:

>>> upcasters = Upcasters()
>>> @upcasters.register("CustomerRegistered", from_version=1)
... def split_name(data):
...     first, _, last = data.pop("name").partition(" ")
...     return {**data, "firstName": first, "lastName": last}

Attach the chain to a store (``connect(url, upcasters=upcasters)``) and every read path, from
``read_stream`` to the HTTP API, returns events at their newest version. Chains are checked when
attached: a gap or two upcasters for one step raises :class:`~cronica.UpcastingError` naming the
type and the versions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from cronica._validation import check_event_type
from cronica.errors import InvalidEventDataError, UpcastingError
from cronica.events import SCHEMA_VERSION_KEY, RecordedEvent, check_schema_version

if TYPE_CHECKING:
    from cronica.event_types import EventRegistry

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Takes an event's data at one schema version, returns it at the next."""


class Upcasters:
    """Upcaster chains keyed by (event type, from version)."""

    def __init__(self) -> None:
        self._steps: dict[str, dict[int, Upcaster]] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: the function upgrades ``event_type`` from ``from_version`` to the next."""

        def decorate(function: Upcaster) -> Upcaster:
            self.add(event_type, from_version, function)
            return function

        return decorate

    def add(self, event_type: str, from_version: int, function: Upcaster) -> None:
        """Add one step; a second upcaster for the same step is an ``UpcastingError``."""
        check_event_type(event_type)
        if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
            raise UpcastingError(
                event_type, f"from_version must be an integer >= 1, not {from_version!r}"
            )
        steps = self._steps.setdefault(event_type, {})
        if from_version in steps:
            raise UpcastingError(
                event_type,
                f"two upcasters from version {from_version} to {from_version + 1}"
                f" ({_name(steps[from_version])} and {_name(function)})",
            )
        steps[from_version] = function

    def add_defaults(self, event_type: str, from_version: int, **defaults: Any) -> None:
        """A step that only fills fields missing at ``from_version`` with default values."""

        def fill(data: dict[str, Any]) -> dict[str, Any]:
            return {**defaults, **data}

        fill.__name__ = f"defaults_{event_type}_v{from_version}"
        self.add(event_type, from_version, fill)

    def __bool__(self) -> bool:
        return bool(self._steps)

    def target_version(self, event_type: str) -> int:
        """The version the chain brings ``event_type`` to (1 when it has no upcaster)."""
        steps = self._steps.get(event_type)
        return max(steps) + 1 if steps else 1

    def check(self, registry: EventRegistry | None = None) -> None:
        """Raise ``UpcastingError`` for a gap in a chain, or (given the registry) a chain that
        does not reach the version the code registers for its type."""
        for event_type, steps in self._steps.items():
            low, high = min(steps), max(steps)
            missing = [v for v in range(low, high) if v not in steps]
            if missing:
                raise UpcastingError(
                    event_type,
                    f"no upcaster from version {missing[0]} to {missing[0] + 1}"
                    f" (the chain has steps from {sorted(steps)})",
                )
        if registry is None:
            return
        for entry in registry:
            steps = self._steps.get(entry.name, {})
            reached = self.target_version(entry.name)
            if steps and reached != entry.version:
                raise UpcastingError(
                    entry.name,
                    f"upcasters reach version {reached} but the code registers version"
                    f" {entry.version}"
                    + (
                        f": no upcaster from version {reached} to {reached + 1}"
                        if reached < entry.version
                        else ""
                    ),
                )

    def upcast(self, event: RecordedEvent) -> RecordedEvent:
        """``event`` at the newest version its chain reaches (itself when already there)."""
        steps = self._steps.get(event.event_type)
        if not steps:
            return event
        try:
            version = check_schema_version(event.metadata)
        except InvalidEventDataError as exc:
            raise UpcastingError(event.event_type, f"event {event.event_id}: {exc}") from None
        top = max(steps) + 1
        if version >= top:
            return event
        if version not in steps:
            raise UpcastingError(
                event.event_type,
                f"event {event.event_id} is at schema version {version}, and no upcaster"
                f" starts there (the chain has steps from {sorted(steps)})",
            )
        # A deep copy: an upcaster may change the dict it gets, never the stored event.
        data: dict[str, Any] = orjson.loads(orjson.dumps(event.data))
        while version < top:
            try:
                data = steps[version](data)
            except Exception as exc:  # an upcaster meeting stored data it did not expect
                raise UpcastingError(
                    event.event_type,
                    f"upcaster {_name(steps[version])} failed on event {event.event_id}"
                    f" (schema version {version}): {type(exc).__name__}: {exc}",
                ) from exc
            if not isinstance(data, dict):
                raise UpcastingError(
                    event.event_type,
                    f"upcaster {_name(steps[version])} returned {type(data).__name__}, not a dict",
                )
            version += 1
        return event._replace(data=data, metadata={**event.metadata, SCHEMA_VERSION_KEY: top})

    def upcast_all(self, events: Iterable[RecordedEvent]) -> list[RecordedEvent]:
        """Every event upcast, in order."""
        if not self._steps:
            return list(events)
        return [self.upcast(event) for event in events]


def schema_version(metadata: Mapping[str, Any]) -> int:
    """The schema version recorded in an event's metadata (1 when absent);
    ``InvalidEventDataError`` when it is not a whole number of at least 1."""
    return check_schema_version(dict(metadata))


def _name(function: Callable[..., Any]) -> str:
    return getattr(function, "__qualname__", repr(function))
