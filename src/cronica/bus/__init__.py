"""Event buses: where the relay publishes the global log (see :mod:`cronica.relay`)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from cronica.bus.base import EventBus
from cronica.bus.memory import MemoryBus
from cronica.errors import InvalidURLError

__all__ = ["EventBus", "MemoryBus", "connect_bus"]


def connect_bus(url: str) -> EventBus:
    """The bus at ``url``: ``redis://host:port/db`` (``?stream=name``, default
    ``cronica:events``; ``?maxlen=N`` trims it to about N entries), ``nats://host:port``
    (JetStream; ``?stream=NAME``, default ``CRONICA_EVENTS``) or ``memory://``.

    >>> connect_bus("memory://").name
    'memory'
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        return MemoryBus()
    if scheme in ("redis", "rediss"):
        from cronica.bus.redis_streams import DEFAULT_STREAM, RedisStreamsBus

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        stream = query.pop("stream", [DEFAULT_STREAM])[0]
        maxlen = query.pop("maxlen", [None])[0]
        if query:
            raise InvalidURLError(f"unknown bus URL parameters: {', '.join(sorted(query))}")
        if maxlen is not None and not (maxlen.isascii() and maxlen.isdigit()):
            raise InvalidURLError(f"maxlen must be a number, not {maxlen!r}")
        base = parts._replace(query="").geturl()
        return RedisStreamsBus(base, stream=stream, max_length=int(maxlen) if maxlen else None)
    if scheme == "nats":
        from cronica.bus.nats_jetstream import DEFAULT_STREAM as NATS_STREAM
        from cronica.bus.nats_jetstream import DEFAULT_SUBJECT, JetStreamBus

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        stream = query.pop("stream", [NATS_STREAM])[0]
        subject = query.pop("subject", [DEFAULT_SUBJECT])[0]
        if query:
            raise InvalidURLError(f"unknown bus URL parameters: {', '.join(sorted(query))}")
        return JetStreamBus(parts._replace(query="").geturl(), stream=stream, subject=subject)
    raise InvalidURLError(
        f"unknown bus URL {url!r}: use redis://host:port/db, nats://host:port or memory://"
    )
