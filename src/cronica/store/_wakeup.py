"""Waking followers of the global log: the head position a store object knows of, and its waiters.

Every store object keeps a :class:`HeadWatch`. Its appends (and imports) advance it right after
they commit, which wakes the threads blocked in ``wait_for_events`` at once. What other processes
(or other store objects) commit reaches it through the backend: SQLite lets one waiter at a time
look at the file's ``PRAGMA data_version`` every ``poll_interval`` seconds; PostgreSQL has a
listener thread that advances it on ``NOTIFY``, plus a slow fallback poll of the head position.
Polls run only while some thread waits.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from cronica.errors import InvalidInputError, InvalidReadError, StoreError

_MAX_SLICE = 60.0
"""The longest single sleep on the condition (``Condition.wait`` refuses huge timeouts)."""

Poll = Callable[[bool], int | None]
"""``poll(force)``: the store's head position, or None when it cannot have moved since the last
poll (SQLite's data version unchanged); ``force`` asks for the head in any case."""


def check_after(after: Any) -> None:
    """``InvalidReadError`` unless ``after`` (a log position to read past) is an int >= 0."""
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise InvalidReadError(f"after must be an integer >= 0, not {after!r}")


MAX_WAIT_SECONDS = 3e9
"""The longest wait ``wait_for_events`` asks of threading (about 95 years)."""


def check_wait_arguments(after: Any, timeout: Any) -> float:
    """Check ``wait_for_events``'s arguments; return the timeout as a float."""
    check_after(after)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or timeout != timeout  # NaN (math.isnan would overflow on a huge int)
        or timeout < 0
    ):
        raise InvalidReadError(f"timeout must be a number of seconds >= 0, not {timeout!r}")
    # Past about a century, a wait is a wait without end (and threading's waits overflow).
    return float(min(timeout, MAX_WAIT_SECONDS))


def check_poll_interval(seconds: Any) -> float:
    """Check a store's ``poll_interval`` (finite seconds > 0); return it as a float."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise InvalidInputError(
            f"poll_interval must be a positive number of seconds, not {seconds!r}"
        )
    return float(seconds)


class HeadWatch:
    """The highest committed position known to one store object, under a condition variable.

    ``known`` only grows: a committed event stays committed, so "some event above ``after`` has
    committed" stays true once seen.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._known = 0
        self._closed = False
        self._polling = False
        self._next_poll = 0.0
        self._interrupts = 0

    @property
    def known(self) -> int:
        """The highest committed position seen so far (0: none)."""
        return self._known

    def advance(self, position: int) -> None:
        """Record that events up to ``position`` have committed; wake the waiters it concerns."""
        with self._cond:
            if position > self._known:
                self._known = position
                self._cond.notify_all()

    def interrupt(self) -> None:
        """End every current ``wait`` at once, as if an event had come (a spurious wake)."""
        with self._cond:
            self._interrupts += 1
            self._cond.notify_all()

    def close(self) -> None:
        """Make every current and later ``wait`` raise ``StoreError``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def wait(
        self,
        after: int,
        timeout: float,
        poll: Poll | None = None,
        interval: float = 0.0,
        *,
        look: bool = True,
    ) -> bool:
        """True as soon as a position above ``after`` is known to have committed, False after
        ``timeout`` seconds.

        With ``poll``, ``look`` first asks it for the head (so an event that is already there
        is found at once), and then one waiting thread at a time calls ``poll(False)`` every
        ``interval`` seconds for what the backend does not report by itself.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._check_open()
            if self._known > after:
                return True
            interrupts = self._interrupts
        if poll is not None and look:
            self.advance_to(poll(True))
            with self._cond:
                self._next_poll = max(self._next_poll, time.monotonic() + interval)
        while True:
            with self._cond:
                self._check_open()
                if self._known > after or self._interrupts != interrupts:
                    return True
                now = time.monotonic()
                if now >= deadline:
                    return False
                if poll is None or self._polling or now < self._next_poll:
                    # While another thread polls, its end notifies: wait for that (or a commit).
                    until = deadline if poll is None or self._polling else self._next_poll
                    self._cond.wait(min(min(until, deadline) - now, _MAX_SLICE))
                    continue
                self._polling = True
                self._next_poll = now + interval
            head: int | None = None
            try:
                head = poll(False)
            finally:
                with self._cond:
                    self._polling = False
                    if head is not None and head > self._known:
                        self._known = head
                    self._cond.notify_all()

    def advance_to(self, head: int | None) -> None:
        """:meth:`advance`, for a poll's answer (None: nothing new)."""
        if head is not None:
            self.advance(head)
