"""Projections: handlers by event type that keep a read model in SQL tables.

A projection names its tables and gives their DDL with ``{table}`` placeholders; its handlers
write SQL with the same placeholders and ``?`` parameters::

    class AccountsProjection(Projection):
        name = "accounts"
        tables = {"accounts": "CREATE TABLE {accounts} (account_id TEXT PRIMARY KEY, owner TEXT)"}

        @on("AccountCreated")
        def created(self, db: ProjectionWriter, event: RecordedEvent) -> None:
            db.execute(
                "INSERT INTO {accounts} VALUES (?, ?)", [event.aggregate_id, event.data["owner"]]
            )

Why the placeholders: the tables a projection writes are generations (``accounts__g1``,
``accounts__g2``, ...). A rebuild fills a new generation beside the live one, then a view of the
public name (``accounts``) switches to it in one transaction, so queries, which read the view,
keep answering all through the rebuild. Write ``{{`` and ``}}`` for literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from cronica.errors import InvalidInputError
from cronica.events import RecordedEvent
from cronica.projections.writer import ProjectionWriter

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_HANDLES = "__cronica_handles__"

Method = TypeVar("Method", bound=Callable[..., Any])


def on(*event_types: str) -> Callable[[Method], Method]:
    """Mark a method of a :class:`Projection` as the handler of these event types."""
    if not event_types or not all(isinstance(t, str) and t for t in event_types):
        raise InvalidInputError("on() needs one or more event type names")

    def mark(method: Method) -> Method:
        setattr(method, _HANDLES, event_types)
        return method

    return mark


def physical_name(table: str, generation: int) -> str:
    """The table that holds ``table`` in a generation of its projection."""
    return f"{table}__g{generation}"


__all__ = ["Handler", "Projection", "ProjectionWriter", "Retention", "on", "physical_name"]


@dataclass(frozen=True, slots=True)
class Retention:
    """Rows of a read-model table kept for a time (seed 1.7.4, strategy 3: projections with a
    time to live): the projector deletes the rows whose ``column`` is older than ``keep``.

    ``column`` holds an ISO 8601 UTC timestamp as text, as ``event.timestamp.isoformat()``
    writes it (the event's time: a row lives ``keep`` after what it records happened)."""

    column: str
    keep: timedelta


Handler = Callable[[Any, ProjectionWriter, RecordedEvent], None]


class Projection:
    """A read model built from the global log. Subclasses set ``name`` and ``tables`` and mark
    handlers with :func:`on`; events of other types pass by.

    - ``name``: the projection's name (lower case, digits and ``_``), its row in the catalog.
    - ``version``: raise it when the handlers or tables change; the projector then rebuilds the
      projection into a new generation and switches to it when that has caught up.
    - ``tables``: table name -> DDL (statements separated by ``;``), with ``{table}``
      placeholders for every table of the projection (index names too: ``{accounts}_by_owner``).
    - ``views``: public name -> ``SELECT`` over the tables; by default one view per table,
      ``SELECT * FROM {table}``, under the table's name. Queries read the views.
    - ``aggregate_types``: when set, only events of streams of these aggregate types reach the
      handlers (the bank's projections take ``BankAccount`` events only, so an event of the same
      name in another kind of stream cannot disturb them).
    - ``defer_indexes``: while a generation is filled from zero, its plain ``CREATE INDEX``
      indexes wait until it has caught up (a bulk load then one index build is much faster).
      Set it to False if handlers look rows up through such an index (``UNIQUE`` indexes and
      primary keys are always there).
    - ``retention``: table -> :class:`Retention`; the projector deletes that table's rows once
      they are older than the time to live (every ``retention_interval`` seconds).

    Handlers get ``(writer, event)`` one event at a time. A projection may instead override
    :meth:`apply`, which gets each batch whole (to write it with ``executemany``, say); it must
    then give the same result as applying the events one at a time, since a failing batch is
    replayed event by event to find the event that fails.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    tables: ClassVar[Mapping[str, str]] = {}
    views: ClassVar[Mapping[str, str] | None] = None
    aggregate_types: ClassVar[frozenset[str] | None] = None
    defer_indexes: ClassVar[bool] = True
    retention: ClassVar[Mapping[str, Retention]] = {}
    """Table -> :class:`Retention`: the rows the projector expires (none by default)."""
    handlers: ClassVar[Mapping[str, Handler]] = {}
    """Event type -> handler, collected from the methods marked with :func:`on`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, Handler] = {}
        for klass in reversed(cls.__mro__):
            for attribute in vars(klass).values():
                for event_type in getattr(attribute, _HANDLES, ()):
                    handlers[event_type] = attribute
        cls.handlers = handlers
        if cls.name:
            _check_definition(cls)

    @property
    def event_types(self) -> frozenset[str]:
        """The event types this projection handles."""
        return frozenset(self.handlers)

    def public_views(self) -> dict[str, str]:
        """Public name -> ``SELECT`` with ``{table}`` placeholders."""
        if self.views is not None:
            return dict(self.views)
        return {table: f"SELECT * FROM {{{table}}}" for table in self.tables}

    def apply(self, writer: ProjectionWriter, events: Sequence[RecordedEvent]) -> None:
        """Apply a batch of events in log order (the default calls each event's handler)."""
        handlers = self.handlers
        kinds = self.aggregate_types
        for event in events:
            handler = handlers.get(event.event_type)
            if handler is not None and (kinds is None or event.aggregate_type in kinds):
                handler(self, writer, event)
        writer.flush()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} v{self.version}>"


def _check_definition(cls: type[Projection]) -> None:
    if not _IDENTIFIER.fullmatch(cls.name):
        raise InvalidInputError(
            f"projection name {cls.name!r}: use lower case letters, digits and _ (max 41)"
        )
    if not isinstance(cls.version, int) or cls.version < 1:
        raise InvalidInputError(f"projection {cls.name!r}: version must be an integer >= 1")
    if not cls.tables:
        raise InvalidInputError(f"projection {cls.name!r} declares no tables")
    names = list(cls.tables) + list(cls.views or ())
    for table in names:
        if not _IDENTIFIER.fullmatch(table) or table.startswith("cronica_"):
            raise InvalidInputError(
                f"projection {cls.name!r}: {table!r} is not a usable table or view name"
            )
    for table, rule in cls.retention.items():
        if table not in cls.tables:
            raise InvalidInputError(
                f"projection {cls.name!r}: retention of unknown table {table!r}"
            )
        if not isinstance(rule, Retention) or not _IDENTIFIER.fullmatch(rule.column):
            raise InvalidInputError(
                f"projection {cls.name!r}: retention of {table!r} needs a Retention on a column"
            )
        if not isinstance(rule.keep, timedelta) or rule.keep <= timedelta(0):
            raise InvalidInputError(
                f"projection {cls.name!r}: retention of {table!r} must keep rows a positive time"
            )
    if cls.views is not None and set(cls.views) & set(cls.tables):
        raise InvalidInputError(f"projection {cls.name!r}: a view and a table share a name")


def check_distinct(projections: Sequence[Projection]) -> None:
    """Refuse two projections with one name, or two projections that claim one table or view."""
    names: set[str] = set()
    claimed: dict[str, str] = {}
    for projection in projections:
        if not projection.name:
            raise InvalidInputError(f"{type(projection).__name__} has no name")
        if projection.name in names:
            raise InvalidInputError(f"two projections are named {projection.name!r}")
        names.add(projection.name)
        for table in [*projection.tables, *projection.public_views()]:
            owner = claimed.setdefault(table, projection.name)
            if owner != projection.name:
                raise InvalidInputError(
                    f"projections {owner!r} and {projection.name!r} both claim {table!r}"
                )
