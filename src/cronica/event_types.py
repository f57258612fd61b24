"""Typed event payloads: a registry from event type names to Python classes, both ways.

An event type is a class (a pydantic model or a dataclass) registered under a name and a schema
version. The registry turns a payload into a ``NewEvent`` (its JSON data, its type name, the
schema version in the metadata when above 1) and a ``RecordedEvent`` back into the payload,
with pydantic doing the conversions (``Decimal`` amounts travel as strings, never floats).

>>> from dataclasses import dataclass
>>> events = EventRegistry()
>>> @events.register
... @dataclass(frozen=True)
... class ItemsPacked:
...     order_id: str
...     quantity: int
>>> events.to_new_event(ItemsPacked("order-1", 3)).data
{'order_id': 'order-1', 'quantity': 3}
>>> @events.register
... class TransferSent(DomainEvent):  # a DomainEvent is camelCase on the wire
...     transfer_id: str
>>> events.to_new_event(TransferSent(transfer_id="t-1")).data
{'transferId': 't-1'}

A field holding personal data is declared ``Annotated[str, PERSONAL]``: a repository encrypts it
with the data subject's key before it reaches the store (:mod:`cronica.privacy`).

Event type names are facts in the past tense (``DepositMade``, never ``MakeDeposit``): an event
records what happened; a command asks for something to happen. Registering a name that does not
end in a past-tense word warns with :class:`EventNameWarning`.
"""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar, get_origin, get_type_hints, overload

import pydantic
from pydantic.alias_generators import to_camel

from cronica._validation import check_event_type
from cronica.errors import InvalidEventDataError, InvalidInputError, UnknownEventTypeError
from cronica.events import SCHEMA_VERSION_KEY, NewEvent, RecordedEvent, check_schema_version

T = TypeVar("T")


class DomainEvent(pydantic.BaseModel):
    """A convenient base for event payloads: frozen, camelCase on the wire.

    ``transfer_id`` in Python is ``transferId`` in the event's JSON data, like the seed's
    envelope; unknown fields in stored data are ignored (an older reader of newer events).
    """

    model_config = pydantic.ConfigDict(
        frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore"
    )


class _PersonalMarker:
    def __repr__(self) -> str:
        return "PERSONAL"


PERSONAL: Final = _PersonalMarker()
"""Marks an event field as personal data: ``owner: Annotated[str, PERSONAL]``. Its value is
encrypted with its data subject's key (crypto-shredding) and reads as ``"[erased]"`` once the
subject is forgotten, so the field must accept that text (``str``, without a pattern that
refuses it)."""

ERASED_PLACEHOLDER: Final = "[erased]"
"""What a personal value reads as once its subject is forgotten."""


class EventNameWarning(UserWarning):
    """An event type name that does not read as a past-tense fact."""


@dataclass(frozen=True, slots=True)
class EventType:
    """One registered event type: its name, its current schema version, its class."""

    name: str
    version: int
    cls: type[Any]
    adapter: pydantic.TypeAdapter[Any]
    personal: tuple[str, ...] = ()
    """The names (as stored) of the fields marked :data:`PERSONAL`."""

    @property
    def validate(self) -> Callable[[Any], Any]:
        """Data to an instance (pydantic's validator, without the adapter's wrapper)."""
        return self.adapter.validator.validate_python


class EventRegistry:
    """Event type names <-> payload classes, with each type's current schema version."""

    def __init__(self) -> None:
        self._by_name: dict[str, EventType] = {}
        self._by_class: dict[type[Any], EventType] = {}

    @overload
    def register(self, cls: type[T], /) -> type[T]: ...

    @overload
    def register(
        self, cls: None = None, /, *, name: str | None = None, version: int = 1
    ) -> Callable[[type[T]], type[T]]: ...

    def register(
        self, cls: type[T] | None = None, /, *, name: str | None = None, version: int = 1
    ) -> type[T] | Callable[[type[T]], type[T]]:
        """Register ``cls`` under ``name`` (default: the class name) at schema ``version``.

        Usable as ``@registry.register`` or ``@registry.register(version=2)``. A name or a class
        registered twice is an ``InvalidInputError``.
        """

        def decorate(target: type[T]) -> type[T]:
            self._add(target, target.__name__ if name is None else name, version)
            return target

        return decorate if cls is None else decorate(cls)

    def register_all(self, *classes: type[Any]) -> None:
        """Register several classes under their own names at version 1."""
        for cls in classes:
            self._add(cls, cls.__name__, 1)

    def _add(self, cls: type[Any], name: str, version: int) -> None:
        check_event_type(name)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidInputError(f"schema version of {name} must be an integer >= 1")
        if name in self._by_name:
            raise InvalidInputError(f"event type {name!r} is already registered")
        if cls in self._by_class:
            raise InvalidInputError(f"{cls.__qualname__} is already registered as another type")
        if not _reads_as_past_tense(name):
            warnings.warn(
                f"event type {name!r} does not read as a past-tense fact: events record what"
                " happened (DepositMade), commands ask for it (MakeDeposit)",
                EventNameWarning,
                stacklevel=4,
            )
        entry = EventType(name, version, cls, pydantic.TypeAdapter(cls), _personal_fields(cls))
        self._by_name[name] = entry
        self._by_class[cls] = entry

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[EventType]:
        return iter(self._by_name.values())

    def get(self, name: str) -> EventType:
        """The registered type called ``name``; ``UnknownEventTypeError`` if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownEventTypeError(name) from None

    def type_of(self, payload: object) -> EventType:
        """The registration of ``payload``'s class."""
        try:
            return self._by_class[type(payload)]
        except KeyError:
            raise UnknownEventTypeError(type(payload).__qualname__) from None

    def personal_fields(self) -> dict[str, tuple[str, ...]]:
        """The event types with personal data: type name -> names of its personal fields."""
        return {name: e.personal for name, e in self._by_name.items() if e.personal}

    def versions(self) -> dict[str, int]:
        """Each registered type's current schema version."""
        return {name: entry.version for name, entry in self._by_name.items()}

    # -- encoding ----------------------------------------------------------------------------

    def encode(self, payload: object) -> tuple[str, dict[str, Any], int]:
        """``payload`` as (event type name, JSON-ready data, schema version).

        Raises ``InvalidEventDataError`` when the payload does not serialise, or would not read
        back as its class (``Decimal("Infinity")``, a NaN): the log is append-only, and an event
        that cannot be decoded would stop its aggregate from loading for good."""
        entry = self.type_of(payload)
        try:
            data = entry.adapter.dump_python(payload, mode="json", by_alias=True)
        except (ValueError, TypeError) as exc:  # pydantic_core.PydanticSerializationError, too
            raise InvalidEventDataError(f"{entry.name} does not serialise: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidEventDataError(f"{entry.name} does not serialise to a JSON object")
        try:
            entry.validate(data)
        except pydantic.ValidationError as exc:
            raise InvalidEventDataError(
                f"{entry.name} would not read back as {entry.cls.__qualname__}:"
                f" {exc.errors()[0]['msg']}"
            ) from None
        return entry.name, data, entry.version

    def to_new_event(
        self,
        payload: object,
        metadata: Mapping[str, Any] | None = None,
        event_id: uuid.UUID | str | None = None,
    ) -> NewEvent:
        """A ``NewEvent`` carrying ``payload``; the schema version goes into the metadata."""
        name, data, version = self.encode(payload)
        meta = dict(metadata or {})
        if version > 1:
            meta[SCHEMA_VERSION_KEY] = version
        return NewEvent(name, data, meta, event_id)

    def decode(self, event: RecordedEvent) -> Any:
        """The payload of a recorded event (already upcast to the current schema version).

        Raises ``UnknownEventTypeError`` for an unregistered type and ``InvalidEventDataError``
        when the data does not fit the class, naming the event.
        """
        entry = self._by_name.get(event.event_type) or self.get(event.event_type)
        meta = event.metadata
        # The common case first: no version recorded, or the one the code reads.
        if (meta.get(SCHEMA_VERSION_KEY, 1) if meta else 1) != entry.version and (
            stored := _stored_version(event)
        ) != entry.version:
            raise InvalidEventDataError(
                f"event {event.event_id} ({event.event_type}) is at schema version {stored},"
                f" the code reads version {entry.version}: register an upcaster"
            )
        try:
            return entry.validate(event.data)
        except pydantic.ValidationError as exc:
            raise InvalidEventDataError(
                f"event {event.event_id} ({event.event_type}) does not fit"
                f" {entry.cls.__qualname__}: {exc.errors()[0]['msg']}"
            ) from None


def _personal_fields(cls: type[Any]) -> tuple[str, ...]:
    """The stored names of ``cls``'s fields marked :data:`PERSONAL` (checked to accept the
    erased placeholder)."""
    fields = getattr(cls, "__pydantic_fields__", None)
    marked: dict[str, tuple[Any, str]]
    if isinstance(fields, dict):  # a pydantic model or dataclass: its fields are resolved
        marked = {
            name: (
                Annotated[(field.annotation, *field.metadata)],
                field.serialization_alias or field.alias or name,
            )
            for name, field in fields.items()
            if any(m is PERSONAL for m in field.metadata)
        }
    else:
        try:
            hints = get_type_hints(cls, include_extras=True)
        except (NameError, TypeError) as exc:
            if "PERSONAL" in str(getattr(cls, "__annotations__", "")):
                raise InvalidInputError(
                    f"{cls.__qualname__}: cannot resolve its annotations to find its personal"
                    f" fields ({exc})"
                ) from None
            return ()
        marked = {
            name: (hint, name)
            for name, hint in hints.items()
            if get_origin(hint) is Annotated and any(m is PERSONAL for m in hint.__metadata__)
        }
    for name, (annotation, _) in marked.items():
        try:
            pydantic.TypeAdapter(annotation).validate_python(ERASED_PLACEHOLDER)
        except (pydantic.ValidationError, pydantic.PydanticUserError) as exc:
            raise InvalidInputError(
                f"{cls.__qualname__}.{name} is personal data, so it must accept the text"
                f" {ERASED_PLACEHOLDER!r} (what it reads as once erased): {exc}"
            ) from None
    return tuple(stored for _, stored in marked.values())


# -- naming ------------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_IRREGULAR_PAST = frozenset(
    [
        "made",
        "sent",
        "paid",
        "done",
        "taken",
        "given",
        "built",
        "sold",
        "bought",
        "held",
        "kept",
        "left",
        "lost",
        "met",
        "put",
        "read",
        "run",
        "set",
        "shut",
        "spent",
        "told",
        "thought",
        "won",
        "written",
        "begun",
        "chosen",
        "drawn",
        "driven",
        "eaten",
        "fallen",
        "forgotten",
        "frozen",
        "got",
        "gotten",
        "hidden",
        "known",
        "ridden",
        "risen",
        "seen",
        "shaken",
        "shown",
        "spoken",
        "stolen",
        "sworn",
        "torn",
        "thrown",
        "woken",
        "worn",
        "withdrawn",
        "undone",
        "split",
        "cut",
        "hit",
        "quit",
        "bid",
        "cast",
        "cost",
        "hurt",
        "let",
        "upset",
        "reset",
        "broadcast",
        "forecast",
        "rebuilt",
        "lent",
        "dealt",
        "meant",
        "felt",
        "found",
        "heard",
        "laid",
        "led",
        "said",
        "sought",
        "stood",
        "struck",
        "taught",
        "understood",
        "wound",
        "bound",
        "fed",
        "fled",
        "fought",
        "ground",
        "hung",
        "slid",
        "stuck",
        "swung",
        "spun",
        "overdrawn",
        "overpaid",
        "prepaid",
        "repaid",
        "resent",
        "rerun",
        "rewritten",
        "shipped",
    ]
)


def _reads_as_past_tense(name: str) -> bool:
    words = _WORD.findall(name)
    if not words:
        return False
    last = words[-1].lower()
    return last.endswith("ed") or last in _IRREGULAR_PAST


def _stored_version(event: RecordedEvent) -> int:
    """The event's schema version; ``InvalidEventDataError`` naming the event when it is not
    one."""
    try:
        return check_schema_version(event.metadata)
    except InvalidEventDataError as exc:
        raise InvalidEventDataError(f"event {event.event_id} ({event.event_type}): {exc}") from None
