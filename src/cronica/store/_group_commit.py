"""Group commit: concurrent appends share one transaction, and so one fsync.

A durable commit costs a disk flush (~0.2-0.3 ms here) whatever it carries, so a single writer
tops out at a few thousand commits per second. When several threads append at once, the first
to arrive becomes the *leader*: it takes every request queued so far, runs them as one batch in
one transaction, hands each caller its own outcome, and passes leadership to the next waiting
caller, if any. An idle store commits a lone append at once; a busy store batches what arrived
during the previous commit, and after a shared batch the next leader waits a fraction of a
millisecond so the callers just answered can join it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Outcome = TypeVar("Outcome")


class _Slot(Generic[Request, Outcome]):
    __slots__ = ("done", "error", "outcome", "promoted", "request", "wake", "weight")

    def __init__(self, request: Request, weight: int) -> None:
        self.request = request
        self.weight = weight
        # Made only for a caller that has to wait: a lone writer never needs one.
        self.wake: threading.Event | None = None
        self.done = False
        self.promoted = False
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None


class GroupCommitter(Generic[Request, Outcome]):
    """Runs ``execute(batch)`` for batches of concurrently submitted requests.

    ``execute`` must return one outcome per request, in order, or raise: an exception is raised
    in every caller of that batch. A batch holds at most ``max_batch`` requests and, beyond its
    first request, at most ``max_weight`` in total weight (say, events). Up to ``max_inflight``
    batches run at once (each needs its own connection; SQLite has one writer, so 1 there).
    """

    def __init__(
        self,
        execute: Callable[[Sequence[Request]], list[Outcome]],
        max_batch: int = 256,
        max_weight: int = 10_000,
        max_inflight: int = 1,
        gather_delay: float = 0.0002,
    ) -> None:
        self._execute = execute
        self._max_batch = max_batch
        self._max_weight = max_weight
        self._max_inflight = max_inflight
        self._gather_delay = gather_delay
        self._last_size = 0
        self._lock = threading.Lock()
        self._queue: list[_Slot[Request, Outcome]] = []
        self._leaders = 0
        self.batches = 0
        """Batches executed so far (each is one transaction)."""
        self.requests = 0
        """Requests executed so far; ``requests / batches`` is the mean batch size."""

    def submit(self, request: Request, weight: int = 1) -> Outcome:
        """Run ``request`` in a batch and return its outcome (or raise its batch's exception)."""
        slot: _Slot[Request, Outcome] = _Slot(request, weight)
        with self._lock:
            self._queue.append(slot)
            lead = self._leaders < self._max_inflight
            if lead:
                self._leaders += 1
            else:
                slot.wake = threading.Event()
        while True:
            if lead:
                # Leadership must always be passed on, even if another leader already took
                # this slot into its batch; so lead before looking at ``done``.
                self._lead()
                lead = False
            if slot.done:
                break
            if slot.wake is None:  # look at the flags once more after publishing the event
                with self._lock:
                    slot.wake = threading.Event()
            else:
                slot.wake.wait()
            with self._lock:
                slot.wake.clear()
                if slot.promoted:
                    slot.promoted = False
                    lead = True
        if slot.error is not None:
            raise slot.error
        return slot.outcome  # type: ignore[return-value]

    def _take_batch(self) -> list[_Slot[Request, Outcome]]:
        """Called with the lock held."""
        if not self._queue:
            return []
        size, weight = 1, self._queue[0].weight
        while size < min(len(self._queue), self._max_batch):
            weight += self._queue[size].weight
            if weight > self._max_weight:
                break
            size += 1
        batch = self._queue[:size]
        del self._queue[:size]
        self.batches += 1
        self.requests += size
        return batch

    def _lead(self) -> None:
        if self._last_size > 1 and len(self._queue) < self._last_size:
            # The callers of the last batch are about to append again: a moment's wait lets
            # them join this batch instead of the next (a lone writer never waits).
            time.sleep(self._gather_delay)
        with self._lock:
            batch = self._take_batch()
            self._last_size = len(batch)
        if batch:
            try:
                outcomes = self._execute([s.request for s in batch])
            except BaseException as exc:  # raised in every caller of the batch
                for waiter in batch:
                    waiter.error = exc
            else:
                for waiter, outcome in zip(batch, outcomes, strict=True):
                    waiter.outcome = outcome
            for waiter in batch:
                waiter.done = True
        with self._lock:
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._leaders -= 1
            else:
                successor.promoted = True
        if successor is not None and successor.wake is not None:
            successor.wake.set()
        for waiter in batch:
            if waiter.wake is not None:
                waiter.wake.set()
