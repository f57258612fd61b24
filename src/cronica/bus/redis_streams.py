"""The event bus on Redis Streams (redis-py).

Every event becomes one entry of one stream (``cronica:events`` by default) with the fields
``eventId``, ``eventType``, ``aggregateId``, ``position`` and ``envelope`` (the seed's envelope as
JSON), as the wire contract says.

The entry id is ``<position>-0``. Positions strictly increase along the log, and Redis refuses
an entry whose id is not above the stream's last one: a batch published again after a relay
crash adds nothing that is already there, so the stream holds every event exactly once, in log
order, and ``XRANGE`` by id is a range of positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from cronica.bus.base import EventBus
from cronica.errors import BusError, BusUnavailableError
from cronica.events import RecordedEvent

DEFAULT_STREAM = "cronica:events"
_ALREADY_THERE = "equal or smaller than the target stream top item"


def entry_fields(event: RecordedEvent) -> dict[Any, Any]:
    """The fields of an event's entry."""
    return {
        "eventId": str(event.event_id),
        "eventType": event.event_type,
        "aggregateId": event.aggregate_id,
        "position": event.position,
        "envelope": event.to_json(),
    }


class RedisStreamsBus(EventBus):
    """Publishes to the Redis stream ``stream`` at ``url`` (``redis://host:port/db``).

    ``max_length``: trim the stream to about this many entries as it grows (None: never).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        stream: str = DEFAULT_STREAM,
        max_length: int | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.stream = stream
        self.name = f"redis:{stream}"
        self.max_length = max_length
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def publish(self, events: Sequence[RecordedEvent]) -> int:
        if not events:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(
                self.stream,
                entry_fields(event),
                id=f"{event.position}-0",
                maxlen=self.max_length,
                approximate=True,
            )
        try:
            results = pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BusUnavailableError(f"Redis at {self.url}: {exc}") from exc
        except redis.RedisError as exc:
            raise BusError(f"Redis at {self.url}: {exc}") from exc
        added = 0
        for result in results:
            if isinstance(result, redis.ResponseError) and _ALREADY_THERE in str(result):
                continue  # published before the relay's last checkpoint: not again
            if isinstance(result, (redis.ConnectionError, redis.TimeoutError)):
                raise BusUnavailableError(f"Redis at {self.url}: {result}")
            if isinstance(result, Exception):
                raise BusError(f"Redis at {self.url}: {result}")
            added += 1
        return added

    def last_position(self) -> int:
        """The position of the stream's last entry (0: empty)."""
        try:
            info = self._redis.xinfo_stream(self.stream)
        except redis.ResponseError:
            return 0
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BusUnavailableError(f"Redis at {self.url}: {exc}") from exc
        last = info.get("last-generated-id", b"0-0")
        text = last.decode() if isinstance(last, bytes) else str(last)
        return int(text.split("-")[0])

    def close(self) -> None:
        self._redis.close()
