"""Subscriptions: follow the global log from a position, catch up, then stay live.

A subscription reads the log in batches from its position; when a read comes back short it has
caught up, and it then waits for new events without polling the database in a loop: appends in
the same process wake it at once, other processes within a bounded interval (PostgreSQL:
LISTEN/NOTIFY; SQLite: a cheap change counter). Filters by event type and aggregate type are
applied as it reads, and its position still moves past the events it filters out, so a
restarted subscription does not read them again.

>>> import cronica
>>> store = cronica.connect("memory://")
>>> _ = store.append("a", [cronica.NewEvent("AccountCreated", {"owner": "Ana"})])
>>> subscription = Subscription(store)
>>> [e.event_type for e in subscription.next_batch(timeout=0)]
['AccountCreated']
>>> subscription.state
'live'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from cronica._validation import (
    check_aggregate_type,
    check_count,
    check_event_type,
    check_several,
)
from cronica.errors import InvalidInputError
from cronica.events import RecordedEvent
from cronica.store.base import EventStore

SubscriptionState = Literal["catching_up", "live"]


class Subscription:
    """Follows ``store``'s global log after ``after``, in batches of at most ``batch_size``.

    ``state`` is ``catching_up`` until a read reaches the end of the log, then ``live``; a live
    subscription that reads a full batch again has fallen behind and is ``catching_up`` once
    more. ``on_state`` (if given) is called with the new state on each change.
    """

    def __init__(
        self,
        store: EventStore,
        after: int = 0,
        *,
        event_types: Sequence[str] | None = None,
        aggregate_types: Sequence[str] | None = None,
        batch_size: int = 500,
        on_state: Callable[[SubscriptionState], None] | None = None,
    ) -> None:
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidInputError(f"after must be an integer >= 0, not {after!r}")
        self.store = store
        self.position = after
        """The position of the last event read (delivered or filtered out)."""
        self.batch_size = check_count(batch_size, "batch_size")
        self._event_types = _names(event_types, check_event_type, "event_types")
        self._aggregate_types = _names(aggregate_types, check_aggregate_type, "aggregate_types")
        self._on_state = on_state
        self.state: SubscriptionState = "catching_up"
        self._closed = threading.Event()

    def next_batch(self, timeout: float | None = None) -> list[RecordedEvent]:
        """The next events that pass the filters; waits up to ``timeout`` seconds (forever for
        None) for new ones when caught up. Returns ``[]`` on timeout or after :meth:`close`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            events = self.store.read_all(after=self.position, limit=self.batch_size)
            self._set_state("live" if len(events) < self.batch_size else "catching_up")
            if events:
                self.position = events[-1].position
                chosen = [event for event in events if self._wanted(event)]
                if chosen:
                    return chosen
                continue
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return []
            self.store.wait_for_events(self.position, min(left, 1.0))
        return []

    def __iter__(self) -> Iterator[list[RecordedEvent]]:
        """Batches, forever (until :meth:`close`)."""
        while not self._closed.is_set():
            batch = self.next_batch(timeout=None)
            if batch:
                yield batch

    def close(self) -> None:
        """Stop: a waiting :meth:`next_batch` returns within a second."""
        self._closed.set()

    def _wanted(self, event: RecordedEvent) -> bool:
        if self._event_types is not None and event.event_type not in self._event_types:
            return False
        return self._aggregate_types is None or event.aggregate_type in self._aggregate_types

    def _set_state(self, state: SubscriptionState) -> None:
        if state != self.state:
            self.state = state
            if self._on_state is not None:
                self._on_state(state)


def _names(
    names: Sequence[str] | None, check: Callable[[Any], str], what: str
) -> frozenset[str] | None:
    """The names of a filter; a bare string is refused (it would filter letter by letter)."""
    if names is None:
        return None
    return frozenset(check(name) for name in check_several(names, what))
