"""Consumers of the events stream on Redis: consumer groups, reclaiming, dead letters, trimming.

Each consumer group gets every event of the stream once; within a group, each entry goes to one
of its consumers, which acknowledges it (``XACK``) after its handler returned. Delivery is at
least once: an entry whose handler failed, or whose consumer died before acknowledging, stays
pending and is claimed again (``XAUTOCLAIM``) by any consumer of the group once it has been idle
``claim_idle`` seconds. After ``max_attempts`` deliveries it goes to the dead-letter stream
(``<stream>:dead-letters``, with the group and the error) and is acknowledged, so one bad event
cannot stop a group. Handlers that must not act twice de-duplicate by event id.

>>> # consumer = StreamConsumer(handle, group="notifications", consumer="worker-1")
>>> # consumer.run_once(block=1.0)   # handle what is there, waiting up to a second for more
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from cronica._background import BackgroundLoop
from cronica.bus.base import Handler
from cronica.bus.redis_streams import DEFAULT_STREAM, redis_errors
from cronica.errors import BusError, BusUnavailableError, CronicaError, InvalidInputError
from cronica.events import RecordedEvent

log = logging.getLogger("cronica.bus")


def _id_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class StreamConsumer(BackgroundLoop):
    """Consumer ``consumer`` of group ``group`` on ``stream``, handing events to ``handler``.

    The group is created at the start of the stream when it does not exist yet (it then gets
    the whole history; ``start="$"`` gets only what comes next).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        group: str,
        consumer: str,
        url: str = "redis://127.0.0.1:6379/0",
        stream: str = DEFAULT_STREAM,
        max_attempts: int = 5,
        claim_idle: float = 30.0,
        batch: int = 100,
        start: str = "0",
    ) -> None:
        if max_attempts < 1 or batch < 1 or claim_idle < 0:
            raise InvalidInputError("max_attempts and batch must be >= 1, claim_idle >= 0")
        super().__init__()
        self.thread_name = f"cronica-consumer-{group}"
        self.handler = handler
        self.group = group
        self.consumer = consumer
        self.stream = stream
        self.dead_letters = f"{stream}:dead-letters"
        self.max_attempts = max_attempts
        self.claim_idle_ms = int(claim_idle * 1000)
        self.batch = batch
        self._redis = redis.Redis.from_url(url)
        self.url = url
        self._start = start
        self._joined = False
        try:
            self._join()
        except BusUnavailableError as exc:  # like the relay: made anyway, joined on first run
            log.warning("group %s: %s (joining when Redis is back)", group, exc)

    def _join(self) -> None:
        """Create the group at ``start`` when it does not exist yet, or join it."""
        with redis_errors(self.url):
            try:
                self._redis.xgroup_create(self.stream, self.group, id=self._start, mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):  # else the group exists: join it
                    raise
        self._joined = True

    def run_once(self, block: float | None = None) -> int:
        """Handle the entries this consumer may take now: those idle past ``claim_idle``
        (failed, or left by a dead consumer), then new ones (waiting up to ``block`` seconds
        for some). Return how many were acknowledged."""
        if not self._joined:
            self._join()
        with redis_errors(self.url):
            return self._run_once(block)

    def _run_once(self, block: float | None) -> int:
        claimed = self._redis.xautoclaim(
            self.stream, self.group, self.consumer, self.claim_idle_ms, "0-0", count=self.batch
        )
        entries: list[tuple[Any, dict[bytes, bytes]]] = [
            entry for entry in claimed[1] if entry[1] is not None
        ]
        if len(entries) < self.batch:
            answer: Any = self._redis.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=self.batch - len(entries),
                block=None if block is None else int(block * 1000),
            )
            for _, fresh in answer or []:
                entries.extend(fresh)
        done = 0
        for raw_id, fields in entries:
            entry_id = _id_text(raw_id)
            try:
                event = RecordedEvent.from_json(fields[b"envelope"])
            except (KeyError, ValueError, TypeError, CronicaError) as exc:
                # Not an event (written by someone else on the stream): it never will be, so
                # it goes to the dead letters at once instead of holding up the group.
                log.error("group %s: entry %s is not an event, it goes to %s: %r", self.group,
                          entry_id, self.dead_letters, exc)  # fmt: skip
                self._to_dead_letters(entry_id, fields, exc, deliveries=1)
                continue
            try:
                self.handler(event)
            except Exception as exc:  # a handler's failure must not stop the group
                self._failed(entry_id, fields, event, exc)
                continue
            self._redis.xack(self.stream, self.group, entry_id)
            done += 1
        return done

    def _failed(
        self, entry_id: str, fields: dict[bytes, bytes], event: RecordedEvent, exc: Exception
    ) -> None:
        pending = self._redis.xpending_range(
            self.stream, self.group, min=entry_id, max=entry_id, count=1
        )
        if not pending:
            return  # no longer this group's to deliver: another consumer has acknowledged it
        deliveries = int(pending[0]["times_delivered"])
        if deliveries < self.max_attempts:
            log.warning(
                "group %s: event %s failed (delivery %d of %d): %s",
                self.group, event.event_id, deliveries, self.max_attempts, exc,
            )  # fmt: skip
            return
        log.error("group %s: event %s goes to %s: %s", self.group, event.event_id,
                  self.dead_letters, exc)  # fmt: skip
        self._to_dead_letters(entry_id, fields, exc, deliveries)

    def _to_dead_letters(
        self, entry_id: str, fields: dict[bytes, bytes], exc: Exception, deliveries: int
    ) -> None:
        """Copy the entry to the dead-letter stream with the group, the error and the number
        of deliveries, and acknowledge it, in one transaction."""
        letter = {
            **fields,
            b"group": self.group.encode(),
            b"error": f"{type(exc).__name__}: {exc}".encode(),
            b"deliveries": str(deliveries).encode(),
        }
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(self.dead_letters, letter)  # type: ignore[arg-type]
        pipe.xack(self.stream, self.group, entry_id)
        pipe.execute()

    def run_forever(self) -> None:
        """Handle entries until :meth:`stop` (each wait for new ones lasts at most 1 s); Redis
        out of reach is retried after a pause that grows to 5 s."""
        pause = 0.1
        while not self._stopping.is_set():
            try:
                self.run_once(block=1.0)
                pause = 0.1
            except BusError as exc:
                log.warning("group %s: %s (retrying in %.1f s)", self.group, exc, pause)
                self._stopping.wait(pause)
                pause = min(pause * 2, 5.0)
            except Exception:  # a bug must not end the group's thread in silence
                log.exception("group %s: unexpected error (retrying in %.1f s)", self.group, pause)
                self._stopping.wait(pause)
                pause = min(pause * 2, 5.0)

    def _release(self) -> None:
        self._redis.close()


def trim_acknowledged(url: str = "redis://127.0.0.1:6379/0", stream: str = DEFAULT_STREAM) -> int:
    """Delete the entries every consumer group has acknowledged; return how many went. Nothing
    goes while the stream has no group (nobody has read it)."""
    client = redis.Redis.from_url(url)
    try:
        with redis_errors(url):
            return _trim(client, stream)
    finally:
        client.close()


def _trim(client: Any, stream: str) -> int:
    """The work of :func:`trim_acknowledged` on an open client."""
    groups = client.xinfo_groups(stream)
    if not groups:
        return 0
    keep: list[tuple[int, int]] = []
    for group in groups:
        name = _id_text(group["name"])
        last = _id_key(_id_text(group["last-delivered-id"]))
        boundary = (last[0], last[1] + 1)  # everything up to the last delivered ...
        summary = client.xpending(stream, name)
        if summary["pending"]:  # ... unless some of it is still pending
            boundary = min(boundary, _id_key(_id_text(summary["min"])))
        keep.append(boundary)
    oldest = min(keep)
    removed: int = client.xtrim(stream, minid=f"{oldest[0]}-{oldest[1]}", approximate=False)
    return removed
