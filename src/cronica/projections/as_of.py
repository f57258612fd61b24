"""A projection as it stood at a past moment, computed from the log (seed 1.6.2).

"How many orders were pending last week?": :func:`projection_as_of` builds the projection from
the log up to a position or a timestamp into a scratch SQLite database (deleted on close) and
hands it back for queries; the live read model is never touched. The projection's SQL must
therefore run on SQLite (keep to the common dialect, as the examples do).
"""

from __future__ import annotations

from datetime import datetime

from cronica.errors import InvalidReadError
from cronica.privacy.cipher import readable
from cronica.projections.base import Projection, ProjectionWriter
from cronica.projections.generations import (
    create_deferred_indexes,
    create_generation,
    point_views,
    table_names,
)
from cronica.readmodels.sqlite import SQLiteReadModels
from cronica.store.base import EventStore


def projection_as_of(
    store: EventStore,
    projection: Projection,
    *,
    position: int | None = None,
    timestamp: datetime | None = None,
    batch_size: int = 5000,
) -> SQLiteReadModels:
    """The read model of ``projection`` built from the events at or before ``position`` and/or
    ``timestamp``; query its views, then close it.

    >>> import cronica
    >>> from cronica.examples.bank_read_models import AccountsProjection
    >>> store = cronica.connect("memory://")
    >>> def account(*events):  # the bank's projections read BankAccount streams
    ...     return store.append("a", list(events), aggregate_type="BankAccount").position
    >>> _ = account(cronica.NewEvent("AccountCreated", {"owner": "Ana"}))
    >>> first = account(cronica.NewEvent("DepositMade", {"amount": "10.00"}))
    >>> _ = account(cronica.NewEvent("DepositMade", {"amount": "5.00"}))
    >>> with projection_as_of(store, AccountsProjection(), position=first) as past:
    ...     past.query("SELECT balance_cents FROM accounts")
    [(1000,)]
    """
    if position is None and timestamp is None:
        raise InvalidReadError("projection_as_of needs a position or a timestamp")
    if position is not None and (
        isinstance(position, bool) or not isinstance(position, int) or position < 0
    ):
        raise InvalidReadError(f"position must be an integer >= 0, not {position!r}")
    if timestamp is not None and not isinstance(timestamp, datetime):
        raise InvalidReadError(f"timestamp must be a datetime, not {type(timestamp).__name__}")
    if timestamp is not None and timestamp.tzinfo is None:
        raise InvalidReadError("the timestamp must be timezone-aware")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidReadError(f"batch_size must be an integer >= 1, not {batch_size!r}")
    if store.has_archived_streams():
        raise InvalidReadError(
            "some streams are archived, and the log no longer serves their events: a past"
            " read model would leave them out; restore them first (cronica restore --batch ...)"
        )
    db = SQLiteReadModels(":memory:")
    try:
        with db.transaction() as tx:
            create_generation(tx, projection, 1, defer_indexes=True)
            point_views(tx, projection, 1)
            writer = ProjectionWriter(tx, table_names(projection, 1))
            after = 0
            while True:
                events = store.read_all(after=after, limit=batch_size)
                if not events:
                    break
                after = events[-1].position
                chosen = [
                    event
                    for event in events
                    if (position is None or event.position <= position)
                    and (timestamp is None or event.timestamp <= timestamp)
                ]
                if chosen:  # the handlers see what the projector shows them: decrypted
                    projection.apply(writer, readable(chosen, store.subject_keys))
                if position is not None and after >= position:
                    break
            create_deferred_indexes(tx, projection, 1)
    except BaseException:
        db.close()
        raise
    return db
