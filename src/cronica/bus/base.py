"""The event bus port: where the relay publishes the global log (seed 1.5.3, 1.6.5).

Command handlers never publish: the relay (:mod:`cronica.relay`) follows the store's global log
from its checkpoint and hands the events to a bus, in log order, and moves its checkpoint only
after the bus has acknowledged them (an outbox by design, no dual write).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

from cronica._closing import Closing
from cronica.errors import BusError
from cronica.events import RecordedEvent

Handler = Callable[[RecordedEvent], None]
"""An event handler: the one API of every consumer (the store's log, Redis, ...)."""


class EventBus(Closing, abc.ABC):
    """A broker the relay publishes to."""

    name: str = "bus"
    """What the relay's checkpoint is called after (one checkpoint per bus and stream)."""

    max_message_bytes: int | None = None
    """The largest message the broker takes (None: no limit cronica knows of)."""

    @abc.abstractmethod
    def publish(self, events: Sequence[RecordedEvent]) -> int:
        """Publish ``events`` (in position order) and return once the broker has acknowledged
        every one; return how many were new to it. An event the broker already holds (the
        relay crashed between the broker's acknowledgement and its checkpoint) is not added
        again. Raises ``BusUnavailableError`` when the broker cannot be reached (the relay
        retries) and ``BusError`` when it refuses; some of the events may then be published."""

    def close(self) -> None:
        """Release connections."""


class MessageTooLargeError(BusError):
    """An event whose message is over the broker's largest: publishing it again cannot help.
    ``position`` is the event's; the ``published`` events before it in the batch are on the
    bus."""

    def __init__(self, message: str, *, position: int, published: int) -> None:
        super().__init__(message)
        self.position = position
        self.published = published
