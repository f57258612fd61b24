"""Aggregates: plain classes that guard a domain's rules and record what happened.

An aggregate (seed 1.4.2) has an identity, state, command methods and event handlers:

- a **command method** checks the invariants against the current state and, when they hold,
  calls :meth:`Aggregate.record` with a new event (a payload object, past tense); when they do
  not, it raises :class:`~cronica.InvariantError` and records nothing;
- :meth:`Aggregate.apply` changes the state for one event. It is the only place state changes,
  and it runs both for new events and when the aggregate is rebuilt from its history, so it
  must not check rules or do I/O: the past cannot be refused.

>>> from dataclasses import dataclass
>>> from decimal import Decimal
>>> @dataclass(frozen=True)
... class DepositMade:
...     amount: Decimal
>>> class Account(Aggregate):
...     balance: Decimal = Decimal(0)
...
...     def deposit(self, amount: Decimal) -> None:
...         if amount <= 0:
...             raise InvariantError("a deposit must be positive")
...         self.record(DepositMade(amount))
...
...     def apply(self, event: object) -> None:
...         match event:
...             case DepositMade(amount=amount):
...                 self.balance += amount
>>> account = Account("acc-1")
>>> account.deposit(Decimal("10"))
>>> account.balance, account.version, len(account.pending_events)
(Decimal('10'), 1, 1)

The state's fields, declared as class annotations (``balance: Decimal``), are what a snapshot
holds; override :meth:`snapshot_state` and :meth:`restore_state` for anything else, and bump
``snapshot_version`` whenever the state's layout changes so older snapshots are ignored.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar

import pydantic

from cronica.errors import InvalidInputError, InvariantError

__all__ = ["Aggregate", "InvariantError"]


class Aggregate:
    """Base class of aggregates. Subclasses take only the id in ``__init__`` (or none at all).

    Class attributes a subclass may set:

    - ``aggregate_type``: the streams' aggregate type (default: the class name);
    - ``snapshot_every``: take a snapshot every N events (default None: never);
    - ``snapshot_version``: the layout of the snapshot state; bump it when the state changes.
    """

    aggregate_type: ClassVar[str] = ""
    snapshot_every: ClassVar[int | None] = None
    snapshot_version: ClassVar[int] = 1

    id: str
    version: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "aggregate_type" not in cls.__dict__:
            cls.aggregate_type = cls.__name__

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self._pending: list[object] = []

    # -- the domain's side -------------------------------------------------------------------

    def apply(self, event: object) -> None:
        """Change the state for ``event``. Override it (a ``match`` on the event classes)."""
        raise NotImplementedError(f"{type(self).__name__} must define apply(event)")

    def record(self, event: object) -> None:
        """Apply a new event and keep it to be appended when the aggregate is saved."""
        self.apply(event)
        self._pending.append(event)
        self.version += 1

    # -- the repository's side ---------------------------------------------------------------

    @property
    def pending_events(self) -> tuple[object, ...]:
        """Events recorded since the aggregate was loaded or last saved, in order."""
        return tuple(self._pending)

    @property
    def stored_version(self) -> int:
        """The stream's version this aggregate was loaded at (before its pending events)."""
        return self.version - len(self._pending)

    @property
    def data_subject(self) -> str:
        """The data subject whose personal data this aggregate's events carry (the person the
        key that encrypts them belongs to): the aggregate's id by default. Override it when
        the person is someone else (an order's customer)."""
        return self.id

    def replay(self, event: object, version: int) -> None:
        """Apply a stored event, the ``version``-th of the stream."""
        self.apply(event)
        self.version = version

    def mark_saved(self) -> None:
        """Forget the pending events: they are stored now."""
        self._pending.clear()

    # -- snapshots ---------------------------------------------------------------------------

    def snapshot_state(self) -> dict[str, Any]:
        """The state as JSON-ready data: the class's annotated fields by default."""
        fields = _state_fields(type(self))
        return {
            name: adapter.dump_python(getattr(self, name), mode="json")
            for name, adapter in fields.items()
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Set the state from :meth:`snapshot_state`'s output."""
        for name, adapter in _state_fields(type(self)).items():
            if name in state:
                setattr(self, name, adapter.validate_python(state[name]))


_BASE_FIELDS = frozenset({"id", "version", "aggregate_type", "snapshot_every", "snapshot_version"})


_FIELDS: dict[type[Aggregate], dict[str, pydantic.TypeAdapter[Any]]] = {}


def _state_fields(cls: type[Aggregate]) -> dict[str, pydantic.TypeAdapter[Any]]:
    """The annotated state fields of ``cls`` with their pydantic adapters (built once)."""
    cached = _FIELDS.get(cls)
    if cached is not None:
        return cached
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError) as exc:
        raise InvalidInputError(
            f"{cls.__name__}: cannot resolve the state's annotations for snapshots ({exc});"
            " override snapshot_state and restore_state"
        ) from exc
    fields = {
        name: pydantic.TypeAdapter(hint)
        for name, hint in hints.items()
        if name not in _BASE_FIELDS
        and not name.startswith("_")
        and typing.get_origin(hint) is not ClassVar
    }
    if not fields:
        raise InvalidInputError(
            f"{cls.__name__} declares no state fields: annotate them (balance: Decimal) or"
            " override snapshot_state and restore_state"
        )
    _FIELDS[cls] = fields
    return fields
