"""Event buses: where the relay publishes the global log (see :mod:`cronica.relay`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from cronica.bus.base import EventBus
from cronica.bus.memory import MemoryBus
from cronica.connect import check_url
from cronica.errors import InvalidURLError

__all__ = ["EventBus", "MemoryBus", "bus_factory", "connect_bus"]


def connect_bus(url: str) -> EventBus:
    """The bus at ``url``: ``redis://host:port/db`` (``?stream=name``, default
    ``cronica:events``; ``?maxlen=N`` trims it to about N entries), ``nats://host:port``
    (JetStream; ``?stream=NAME``, default ``CRONICA_EVENTS``; ``?subject=``, default
    ``cronica.events``) or ``memory://``.

    >>> connect_bus("memory://").name
    'memory'
    """
    return bus_factory(url)()


def bus_factory(url: str) -> Callable[[], EventBus]:
    """What :func:`connect_bus` would make of ``url``, checked (``InvalidURLError``) but not
    made yet: nothing is connected until the factory is called."""
    check_url(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        return MemoryBus
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
        length = int(maxlen) if maxlen else None
        return functools.partial(RedisStreamsBus, base, stream=stream, max_length=length)
    if scheme == "nats":
        from cronica.bus.nats_jetstream import DEFAULT_STREAM as NATS_STREAM
        from cronica.bus.nats_jetstream import DEFAULT_SUBJECT, JetStreamBus

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        stream = query.pop("stream", [NATS_STREAM])[0]
        subject = query.pop("subject", [DEFAULT_SUBJECT])[0]
        if query:
            raise InvalidURLError(f"unknown bus URL parameters: {', '.join(sorted(query))}")
        base = parts._replace(query="").geturl()
        return functools.partial(JetStreamBus, base, stream=stream, subject=subject)
    raise InvalidURLError(
        f"unknown bus URL {url!r}: use redis://host:port/db, nats://host:port or memory://"
    )
