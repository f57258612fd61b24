"""The event bus on Redis Streams (redis-py).

Every event becomes one entry of one stream (``cronica:events`` by default) with the fields
``eventId``, ``eventType``, ``aggregateId``, ``position`` and ``envelope`` (the seed's envelope as
JSON), as the wire contract says.

The entry id is ``<position>-0``. Positions strictly increase along the log, and Redis refuses
an entry whose id is not above the stream's last one: a batch published again after a relay
crash adds nothing that is already there, so the stream holds every event exactly once, in log
order, and ``XRANGE`` by id is a range of positions. A refused entry counts as published only
when the stream holds the same event id at that id (or nothing at or below it: trimmed away);
otherwise the publish fails (``BusError``), rather than dropping events of a store whose
positions start again below the stream's top (a new store, or one ``cronica migrate`` wrote).

A batch goes in one Lua script, which stops at the first entry Redis refuses for any other
reason (out of memory, say). A pipeline would go on with the entries after it, and the refused
one, lower than the stream's top, could then never be added: the script keeps the stream
without gaps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from cronica.bus.base import EventBus
from cronica.errors import BusError, BusUnavailableError
from cronica.events import RecordedEvent

DEFAULT_STREAM = "cronica:events"
MAX_CALL_BYTES = 64 * 1024 * 1024
"""The most envelope bytes one publishing call carries (Redis refuses a client's query past
1 GiB by default: a relay page of 1,000 events of 1 MiB each would pass it)."""
_FIELDS = ("eventId", "eventType", "aggregateId", "position", "envelope")

# KEYS[1]: the stream. ARGV[1]: max length (0: none); then per entry: its id and 5 values.
_PUBLISH = """
local maxlen = tonumber(ARGV[1])
local names = {'eventId', 'eventType', 'aggregateId', 'position', 'envelope'}
local added = 0
for i = 2, #ARGV, 6 do
  local args = {KEYS[1]}
  if maxlen > 0 then
    args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = maxlen
  end
  args[#args + 1] = ARGV[i]
  for j = 1, 5 do
    args[#args + 1] = names[j]; args[#args + 1] = ARGV[i + j]
  end
  local reply = redis.pcall('XADD', unpack(args))
  if type(reply) == 'table' and reply.err then
    if not string.find(reply.err, 'equal or smaller', 1, true) then
      return redis.error_reply('entry ' .. ARGV[i] .. ': ' .. reply.err)
    end
    -- Below the stream's top: published before, unless the entry there is another event or
    -- there is none (a store whose positions start again lower, e.g. a new or migrated one).
    local at = redis.call('XREVRANGE', KEYS[1], ARGV[i], '-', 'COUNT', 1)
    if #at == 1 then
      local same = false
      if at[1][1] == ARGV[i] then
        for k = 1, #at[1][2], 2 do
          if at[1][2][k] == 'eventId' then same = at[1][2][k + 1] == ARGV[i + 1] end
        end
      end
      if not same then
        return redis.error_reply('entry ' .. ARGV[i] .. ' (event ' .. ARGV[i + 1] ..
          '): the stream holds another event there, or none below its last entry: is this' ..
          ' store publishing to a stream another store (or its earlier self) filled?')
      end
    end  -- none at or below it: trimmed away since it was published
  else
    added = added + 1
  end
end
return added
"""


@contextmanager
def redis_errors(url: str) -> Iterator[None]:
    """Redis's errors as the bus's: ``BusUnavailableError`` when Redis cannot be reached,
    ``BusError`` when it refuses."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BusUnavailableError(f"Redis at {url}: {exc}") from exc
    except redis.RedisError as exc:
        raise BusError(f"Redis at {url}: {exc}") from exc


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
        self._publish = self._redis.register_script(_PUBLISH)

    def publish(self, events: Sequence[RecordedEvent]) -> int:
        """Publish in log order, one script call per :data:`MAX_CALL_BYTES` of envelopes (a
        page of large events in one call could pass Redis's query buffer limit)."""
        added = 0
        arguments: list[Any] = []
        size = 0
        for event in events:
            fields = entry_fields(event)
            if arguments and size + len(fields["envelope"]) > MAX_CALL_BYTES:
                added += self._call(arguments)
                arguments, size = [], 0
            arguments.append(f"{event.position}-0")
            arguments.extend(fields[name] for name in _FIELDS)
            size += len(fields["envelope"])
        return added + (self._call(arguments) if arguments else 0)

    def _call(self, entries: list[Any]) -> int:
        """Run the publishing script on ``entries`` (an id and five values each)."""
        with redis_errors(self.url):
            added = self._publish(keys=[self.stream], args=[self.max_length or 0, *entries])
        return int(added)

    def last_position(self) -> int:
        """The position of the stream's last entry (0: empty)."""
        with redis_errors(self.url):
            try:
                info = self._redis.xinfo_stream(self.stream)
            except redis.ResponseError:
                return 0  # no stream yet
        last = info.get("last-generated-id", b"0-0")
        text = last.decode() if isinstance(last, bytes) else str(last)
        return int(text.split("-")[0])

    def close(self) -> None:
        self._redis.close()
