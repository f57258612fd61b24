"""An event bus in memory: for tests, and the shape of a bus in one line of state."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cronica.bus.base import EventBus
from cronica.events import RecordedEvent


class MemoryBus(EventBus):
    """Keeps what it is given in ``events``, in order, once per position."""

    name = "memory"

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []
        self._lock = threading.Lock()

    def publish(self, events: Sequence[RecordedEvent]) -> int:
        with self._lock:
            top = self.events[-1].position if self.events else 0
            new = [event for event in events if event.position > top]
            self.events.extend(new)
            return len(new)
