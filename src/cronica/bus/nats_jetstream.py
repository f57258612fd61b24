"""The event bus on NATS JetStream (nats-py): the same port as Redis Streams, another broker.

Every event is one message on the subject (``cronica.events`` by default) of a JetStream stream
(``CRONICA_EVENTS``): the seed's envelope as JSON, and the headers ``Nats-Msg-Id`` (the event
id), ``Cronica-Event-Type``, ``Cronica-Aggregate-Id`` and ``Cronica-Position``. JetStream drops a
message whose ``Nats-Msg-Id`` it has seen within the stream's duplicate window (2 minutes by
default), so a page published again by a relay that crashed soon after is not stored twice;
after a longer outage, consumers de-duplicate by event id.

nats-py is asynchronous; this bus runs its own event loop in a thread, so the relay (which is
not) can call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import nats
from nats.errors import ConnectionClosedError, NoServersError, TimeoutError
from nats.js.errors import NotFoundError

from cronica.bus.base import EventBus, MessageTooLargeError
from cronica.errors import BusError, BusUnavailableError
from cronica.events import RecordedEvent

T = TypeVar("T")

log = logging.getLogger("cronica.bus")


DEFAULT_STREAM = "CRONICA_EVENTS"
DEFAULT_SUBJECT = "cronica.events"


class JetStreamBus(EventBus):
    """Publishes to JetStream stream ``stream`` (created on first use, for ``subject``)."""

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        stream: str = DEFAULT_STREAM,
        subject: str = DEFAULT_SUBJECT,
        duplicate_window: float = 120.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.stream = stream
        self.subject = subject
        self.name = f"nats:{stream}"
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="cronica-nats", daemon=True
        )
        self._thread.start()
        self._duplicate_window = duplicate_window
        self._nc: Any = None
        self._js: Any = None
        try:
            self._connect_now()
        except BusUnavailableError as exc:  # like Redis: the bus is made, the relay retries
            log.warning("%s (publishing will try again)", exc)
        except BaseException:
            self._stop_loop()
            raise

    def _connect_now(self) -> None:
        """Connect (and make the stream) within ``timeout`` or raise ``BusUnavailableError``;
        learn the server's ``max_payload`` (:attr:`max_message_bytes`)."""
        self._nc, self._js = self._run(self._connect(self._duplicate_window), self.timeout + 1)
        self.max_message_bytes = int(self._nc.max_payload)

    def _run(self, coroutine: Coroutine[Any, Any, T], wait: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self.timeout * 4 if wait is None else wait)
        except (NoServersError, ConnectionClosedError, TimeoutError, OSError) as exc:
            future.cancel()  # a connect left running would go on trying in the background
            raise BusUnavailableError(f"NATS at {self.url}: {exc!r}") from exc
        except nats.errors.Error as exc:
            raise BusError(f"NATS at {self.url}: {exc!r}") from exc

    async def _connect(self, duplicate_window: float) -> tuple[Any, Any]:
        nc = await nats.connect(
            self.url, connect_timeout=self.timeout, allow_reconnect=True, max_reconnect_attempts=-1
        )
        try:
            js = nc.jetstream(timeout=self.timeout)
            try:
                await js.stream_info(self.stream)
            except NotFoundError:
                await js.add_stream(
                    name=self.stream, subjects=[self.subject], duplicate_window=duplicate_window
                )
        except BaseException:  # connected, but no stream: leave no connection reconnecting
            await nc.close()
            raise
        return nc, js

    def publish(self, events: Sequence[RecordedEvent]) -> int:
        if not events:
            return 0
        if self._nc is None:
            self._connect_now()
        return self._run(self._publish(events))

    async def _publish(self, events: Sequence[RecordedEvent]) -> int:
        messages = [(event, event.to_json(), _headers(event)) for event in events]
        too_large = next(
            (i for i, (_, body, headers) in enumerate(messages) if self._over(body, headers)),
            None,
        )
        pending = []
        for _, body, headers in messages[:too_large]:  # sent in order, acknowledged together
            pending.append(
                await self._js.publish_async(
                    self.subject, body, stream=self.stream, headers=headers
                )
            )
        acks = await asyncio.gather(*pending)
        added = sum(1 for ack in acks if not ack.duplicate)
        if too_large is not None:  # the events before it are published: the relay may seek
            event, body, headers = messages[too_large]
            raise MessageTooLargeError(
                f"event {event.event_id} (position {event.position}) makes a message of"
                f" {_size(body, headers)} bytes, over the NATS server's max_payload of"
                f" {self.max_message_bytes}: raise max_payload in the server's configuration,"
                f" or seek the relay to position {event.position} to leave it out",
                position=event.position,
                published=added,
            )
        return added

    def _over(self, body: bytes, headers: dict[str, str]) -> bool:
        largest = self.max_message_bytes
        return largest is not None and _size(body, headers) > largest

    def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(BusError):  # closing a connection that is gone already
                self._run(self._nc.close())
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def _headers(event: RecordedEvent) -> dict[str, str]:
    return {
        "Nats-Msg-Id": str(event.event_id),
        "Cronica-Event-Type": event.event_type,
        "Cronica-Aggregate-Id": event.aggregate_id,
        "Cronica-Position": str(event.position),
    }


def _size(body: bytes, headers: dict[str, str]) -> int:
    """About what a message takes against ``max_payload``: its body and its header block."""
    return len(body) + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 12
