"""What the routes work with: the store, the bank's repository, its read models, its projector.

One :class:`Services` per application, opened when the app starts and closed when it stops.
The routes are thin: they turn HTTP into these library calls and the results back into JSON.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from cronica._background import BackgroundLoop
from cronica.aio import AsyncEventStore
from cronica.audit import Audit
from cronica.bus import connect_bus
from cronica.bus.log_consumer import LogConsumer
from cronica.connect import connect
from cronica.events import RecordedEvent
from cronica.examples.bank import BankAccount, bank_events
from cronica.examples.bank_handlers import bank_handlers
from cronica.examples.bank_read_models import bank_projections
from cronica.examples.transfers import Transfer, transfer_steps
from cronica.privacy.cipher import readable
from cronica.privacy.erasure import Erasure, forget
from cronica.projections import Projector
from cronica.readmodels import connect_read_models, read_models_for
from cronica.readmodels.base import ReadModelDatabase, Row
from cronica.readmodels.sqlite import empty_wal
from cronica.relay import Relay
from cronica.repository import Repository
from cronica.sagas import DELIVERY_ATTEMPTS, SagaRunner, Sagas
from cronica.server.errors import HTTPError
from cronica.server.settings import ServerSettings
from cronica.store.base import EventStore

log = logging.getLogger("cronica.server")

T = TypeVar("T")

BANK_PROJECTIONS = ("accounts", "transactions", "active_accounts")
COMMAND_LOCK_STRIPES = 256


class Services:
    """The store, read models and projector behind one application."""

    def __init__(self, settings: ServerSettings, store: EventStore | None = None) -> None:
        self.settings = settings
        self.stopping = asyncio.Event()
        """Set when the server is asked to stop: long responses (the live logs) end."""
        options: dict[str, Any] = {}
        if settings.max_event_bytes is not None:
            options["max_event_size"] = settings.max_event_bytes
        self._owns_store = store is None
        self.store = store if store is not None else connect(settings.store, **options)
        try:
            self.read_models: ReadModelDatabase = (
                read_models_for(self.store)
                if settings.read_models is None
                else connect_read_models(settings.read_models)
            )
            self.accounts = Repository(self.store, BankAccount, bank_events)
            # Building the projector registers the bank's projections (their tables and
            # catalog rows), so queries answer even before a projector has run.
            batching: dict[str, Any] = (
                {} if settings.batch_size is None else {"batch_size": settings.batch_size}
            )
            self.projector = Projector(self.store, bank_projections(), self.read_models, **batching)
            self.catalog = self.projector.catalog
            self.relay: Relay | None = None
            if settings.bus is not None:
                self.relay = Relay(
                    self.store, connect_bus(settings.bus), self.read_models, **batching
                )
            self.transfers = Sagas(self.store, Transfer)
            self.consumers: list[BackgroundLoop] = []
        except BaseException:
            if hasattr(self, "read_models"):
                self.read_models.close()
            if self._owns_store:
                self.store.close()
            raise
        self.aio = AsyncEventStore(self.store)
        self.owned_aggregate_types = frozenset(
            {BankAccount.aggregate_type, Transfer.aggregate_type}
        )
        """Stream types the store API may not append to: their service's commands own them."""
        self.running_projector = False
        self._command_locks = [asyncio.Lock() for _ in range(COMMAND_LOCK_STRIPES)]

    def command_lock(self, aggregate_id: str) -> asyncio.Lock:
        """The lock that commands on ``aggregate_id`` take in this process: concurrent commands
        on one account queue up here instead of failing on each other's writes (replicas in
        other processes still meet as concurrency conflicts, and the command retries)."""
        return self._command_locks[hash(aggregate_id) % COMMAND_LOCK_STRIPES]

    def start(self) -> None:
        if self.settings.run_projector:
            self.projector.start()
            self.running_projector = True
            if self.relay is not None:
                self.relay.start()
            self.consumers = self._handler_consumers()
            for consumer in self.consumers:
                consumer.start()

    def _handler_consumers(self) -> list[BackgroundLoop]:
        """The seed's event handlers and the transfer saga's runner, on the bus when there is
        a Redis one (consumer groups), else over the store's own log (the in-process bus)."""
        runner = SagaRunner(
            self.transfers,
            transfer_steps(self.accounts),
            timers=self.read_models,
        )
        handlers = [(group, handler, 5) for group, handler in bank_handlers(self.read_models)]
        handlers.append((runner.group, runner.handle, DELIVERY_ATTEMPTS))
        loops: list[BackgroundLoop] = [runner]  # its timers: deadlines and retries
        from cronica.bus.redis_streams import RedisStreamsBus

        bus = None if self.relay is None else self.relay.bus
        if not isinstance(bus, RedisStreamsBus):
            # No bus, or one this process does not consume from (NATS): the store's log.
            return loops + [
                LogConsumer(
                    self.store,
                    handler,
                    group=group,
                    checkpoints=self.read_models,
                    max_attempts=attempts,
                )
                for group, handler, attempts in handlers
            ]
        from cronica.bus.redis_consumer import StreamConsumer

        name = f"{socket.gethostname()}:{os.getpid()}"
        return loops + [
            StreamConsumer(
                handler,
                group=group,
                consumer=name,
                url=bus.url,
                stream=bus.stream,
                max_attempts=attempts,
            )
            for group, handler, attempts in handlers
        ]

    def close(self) -> None:
        """Stop the projector, then close the read models and the store, whatever fails."""
        try:
            self.aio.shutdown()
            for consumer in self.consumers:
                consumer.close()
            if self.relay is not None:
                self.relay.close()
                self.relay.bus.close()
            self.projector.close()
        finally:
            try:
                self.read_models.close()
            finally:
                if self._owns_store:
                    self.store.close()

    # -- personal data -------------------------------------------------------------------------

    def readable(self, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """Events as the API shows them: personal values decrypted, ``[erased]`` once their
        subject is forgotten. (The bus and the store keep them encrypted.)"""
        return readable(events, self.store.subject_keys)

    def forget(self, subject_id: str, reason: str, audit: Audit) -> tuple[Erasure, bool]:
        """Forget a data subject (an account's holder: the account id), then wait (bounded)
        until this process's projector has dropped their personal data from the read models;
        the flag says whether it has.
        404 ``not_found`` for a subject with no stream, no key and no erasure."""
        keys = self.store.subject_keys()
        if not (
            keys.has_keys(subject_id)
            or keys.forgotten(subject_id)
            or self.store.read_stream(subject_id, limit=1)
        ):
            raise HTTPError(404, "not_found", f"no data subject {subject_id!r}")
        erasure = forget(self.store, subject_id, reason=reason, audit=audit)
        self.accounts.forget_cached(subject_id)
        if erasure.position is None or not self.running_projector:
            return erasure, False
        done = self.projector.wait_for(
            erasure.position, self.settings.min_position_timeout, BANK_PROJECTIONS
        )
        if done and self.read_models.dialect == "sqlite":
            # The projector empties the WAL after the batch; do it once more now, so that the
            # answer comes after the old rows are gone from the files.
            empty_wal(self.read_models)
        return erasure, done

    async def read(self, sql: str, params: list[Any]) -> list[Row]:
        """A read-model query from async code: SQLite answers from memory or the page cache
        in microseconds, so it runs on the event loop; PostgreSQL waits on the network, so it
        runs in the thread pool."""
        if self.read_models.dialect == "sqlite":
            return self.read_models.query(sql, params)
        return await run_in_threadpool(self.read_models.query, sql, params)

    # -- read-your-writes ----------------------------------------------------------------------

    async def wait_for(self, position: int | None, names: tuple[str, ...]) -> None:
        """Wait (bounded, without holding a thread) until the read models ``names`` have
        reached ``position``. 422 at once when no event has that position yet (no command
        answered with it); 503 ``read_model_behind`` if they do not reach it in time, or at once
        when one of them has failed before it."""
        if position is None or position <= 0:
            return
        timeout = self.settings.min_position_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        sql = (
            "SELECT name, position, state, error FROM cronica_projections"
            f" WHERE name IN ({', '.join('?' * len(names))})"
        )
        step = 0.001
        checked_head = False
        while True:
            rows = await self.read(sql, list(names))
            if len(rows) == len(names) and all(at >= position for _, at, _, _ in rows):
                return
            if not checked_head:  # only when not reached at once: the usual case asks nothing
                self.check_in_log(position, await self.call(self.store.head_position))
                checked_head = True
            failed = [(name, error) for name, at, state, error in rows if state == "failed"]
            if failed:
                raise HTTPError(
                    503,
                    "read_model_behind",
                    f"projection {failed[0][0]} has failed before position {position}:"
                    f" {failed[0][1]}",
                    minPosition=position,
                )
            left = deadline - loop.time()
            if left <= 0:
                raise HTTPError(
                    503,
                    "read_model_behind",
                    f"the read models {', '.join(names)} have not reached position {position}"
                    f" within {timeout:g} s",
                    headers={"Retry-After": "1"},
                    minPosition=position,
                )
            await asyncio.sleep(min(step, left))
            step = min(step * 2, 0.01)

    @staticmethod
    def check_in_log(position: int, head: int) -> None:
        """422 for a ``minPosition`` past the end of the log (no command answered with it)."""
        if position > head:
            raise HTTPError(
                422,
                "invalid_input",
                f"minPosition {position} is beyond the end of the log (position {head})",
            )

    def following(
        self, disconnected: Callable[[], Awaitable[bool]]
    ) -> Callable[[], Awaitable[bool]]:
        """For a long response that follows the log: a check that says whether to go on (the
        client is there and the server is not stopping)."""

        async def go_on() -> bool:
            return not self.stopping.is_set() and not await disconnected()

        return go_on

    async def wait_for_events(self, after: int, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for an event after ``after``, or until the server
        is asked to stop."""
        waiting = asyncio.ensure_future(self.aio.wait_for_events(after, timeout))
        stopping = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            stopping.cancel()

    async def call(self, function: Callable[[], T]) -> T:
        """A quick store call from async code: on the event loop for SQLite (microseconds),
        in the thread pool for PostgreSQL (a network round trip)."""
        if self.store.backend_name in ("sqlite", "memory"):
            return function()
        return await run_in_threadpool(function)
