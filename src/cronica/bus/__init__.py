"""Event buses: where the relay publishes the global log (see :mod:`cronica.relay`)."""

from cronica.bus.base import EventBus
from cronica.bus.memory import MemoryBus

__all__ = ["EventBus", "MemoryBus"]
