"""Event store backends behind one contract: memory, SQLite, PostgreSQL."""

from cronica.store.base import EventStore, HorizonHolder, StoreStatus
from cronica.store.memory import MemoryEventStore
from cronica.store.sqlite import SQLiteEventStore

__all__ = ["EventStore", "HorizonHolder", "MemoryEventStore", "SQLiteEventStore", "StoreStatus"]
