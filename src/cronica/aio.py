"""The asyncio face of an event store: the same store, its calls run in worker threads.

The logic lives once, in the synchronous store; this wrapper moves each call off the event loop.
Concurrent coroutines become concurrent threads, which the SQL backends' group commit turns into
shared transactions, so many simultaneous appends cost few fsyncs.

>>> import asyncio, cronica
>>> async def main():
...     async with cronica.AsyncEventStore(cronica.connect("memory://")) as store:
...         return await store.append("acc-1", [cronica.NewEvent("AccountCreated", {})])
>>> asyncio.run(main()).to_version
1
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from cronica.connect import connect
from cronica.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent, StreamInfo
from cronica.store._wakeup import check_wait_arguments
from cronica.store.base import EventStore, StoreStatus

T = TypeVar("T")

WAIT_SLICE = 0.25
"""Seconds one worker thread blocks for ``wait_for_events`` before the coroutine looks again."""


class AsyncEventStore:
    """Awaitable versions of :class:`~cronica.store.base.EventStore`'s methods."""

    def __init__(self, store: EventStore, *, max_threads: int = 32) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_threads, thread_name_prefix="cronica-store")

    async def _run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args, **kwargs))

    async def append(
        self,
        aggregate_id: str,
        events: Iterable[NewEvent],
        expected_version: ExpectedVersion | str = ANY,
        aggregate_type: str | None = None,
    ) -> AppendResult:
        """See :meth:`EventStore.append`."""
        return await self._run(
            self.store.append, aggregate_id, list(events), expected_version, aggregate_type
        )

    async def read_stream(
        self,
        aggregate_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        as_of: datetime | None = None,
        backward: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """See :meth:`EventStore.read_stream`."""
        return await self._run(
            self.store.read_stream, aggregate_id, from_version, to_version, as_of, backward, limit
        )

    async def read_all(
        self,
        after: int = 0,
        limit: int | None = None,
        event_types: Sequence[str] | None = None,
        aggregate_types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        """See :meth:`EventStore.read_all`."""
        return await self._run(self.store.read_all, after, limit, event_types, aggregate_types)

    async def read_event(self, event_id: uuid.UUID | str) -> RecordedEvent | None:
        """See :meth:`EventStore.read_event`."""
        return await self._run(self.store.read_event, event_id)

    async def stream_info(self, aggregate_id: str) -> StreamInfo:
        """See :meth:`EventStore.stream_info`."""
        return await self._run(self.store.stream_info, aggregate_id)

    async def list_streams(
        self, aggregate_type: str | None = None, after: str | None = None, limit: int | None = 100
    ) -> list[StreamInfo]:
        """See :meth:`EventStore.list_streams`."""
        return await self._run(self.store.list_streams, aggregate_type, after, limit)

    async def head_position(self) -> int:
        """See :meth:`EventStore.head_position`."""
        return await self._run(self.store.head_position)

    async def count_events(self, after: int = 0) -> int:
        """See :meth:`EventStore.count_events`."""
        return await self._run(self.store.count_events, after)

    async def wait_for_events(self, after: int, timeout: float) -> bool:
        """See :meth:`EventStore.wait_for_events`.

        The blocking wait runs in the worker threads in slices of at most
        :data:`WAIT_SLICE` seconds, so a cancelled wait frees its thread within one slice.
        """
        seconds = check_wait_arguments(after, timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        look = True
        while True:
            remaining = max(0.0, deadline - loop.time())
            step = min(remaining, WAIT_SLICE)
            if await self._run(self.store._wait_for_events, after, step, look=look):
                return True
            if step >= remaining:
                return False
            look = False

    async def status(self) -> StoreStatus:
        """See :meth:`EventStore.status`."""
        return await self._run(self.store.status)

    def shutdown(self) -> None:
        """Stop the worker threads and leave the store open (its owner closes it)."""
        self._executor.shutdown(wait=False)

    async def close(self) -> None:
        """Close the store and stop the worker threads."""
        await self._run(self.store.close)
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def connect_async(url: str, **options: Any) -> AsyncEventStore:
    """Open the store at ``url`` (see :func:`cronica.connect`) without blocking the loop."""
    store = await asyncio.to_thread(connect, url, **options)
    return AsyncEventStore(store)
