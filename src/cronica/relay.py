"""The relay: the global log, from a checkpoint, onto an event bus (seed 1.5.3, 1.6.5).

Command handlers only append to the store. The relay reads the log in position order, publishes
each page to the bus, and moves its checkpoint once the bus has acknowledged the page, so:

- an event the store acknowledged reaches the bus, however long the bus was away: while it is
  down the store keeps taking writes and the relay retries with a backoff that grows to 5 s;
- a relay that crashes between the bus's acknowledgement and its checkpoint publishes that page
  again; buses that can tell (Redis Streams, by entry id) keep one copy, others deliver a
  duplicate that consumers drop by event id.

The checkpoint lives in a table ``cronica_relays`` in the read-model database (by default the
store's own database), one row per bus.

>>> import cronica
>>> from cronica.bus.memory import MemoryBus
>>> store = cronica.connect("memory://")
>>> _ = store.append("acc-1", [cronica.NewEvent("AccountCreated", {"owner": "Ana"})])
>>> bus = MemoryBus()
>>> with Relay(store, bus) as relay:
...     relay.run_until_caught_up()
1
>>> [e.event_type for e in bus.events]
['AccountCreated']
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from cronica._background import BackgroundLoop
from cronica._validation import check_count, check_seconds
from cronica.bus.base import EventBus, MessageTooLargeError
from cronica.errors import BusUnavailableError, StoreError
from cronica.readmodels import read_models_for
from cronica.readmodels.base import ReadModelDatabase
from cronica.store.base import EventStore

log = logging.getLogger("cronica.relay")

ENVELOPE_ALLOWANCE = 8192
"""Bytes an event's message may take beyond its data and metadata (the envelope's other
fields, the broker's headers)."""

RELAYS_DDL = """CREATE TABLE IF NOT EXISTS cronica_relays (
    name       TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    published  BIGINT NOT NULL
)"""


@dataclass(frozen=True, slots=True)
class RelayStatus:
    """A relay's checkpoint, as ``cronica status`` and ``/metrics`` show it."""

    name: str
    position: int
    published: int
    lag_events: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def relay_status(store: EventStore, checkpoints: ReadModelDatabase) -> list[RelayStatus]:
    """Every relay recorded in ``checkpoints``, with how far behind the log it is."""
    if not checkpoints.table_exists("cronica_relays"):
        return []
    rows = checkpoints.query("SELECT name, position, published FROM cronica_relays ORDER BY name")
    return [
        RelayStatus(name, int(at), int(published), store.count_events(after=int(at)))
        for name, at, published in rows
    ]


class Relay(BackgroundLoop):
    """Follows ``store``'s global log and publishes it to ``bus``."""

    thread_name = "cronica-relay"
    store: EventStore

    def __init__(
        self,
        store: EventStore,
        bus: EventBus,
        checkpoints: ReadModelDatabase | None = None,
        *,
        batch_size: int = 1000,
        idle_wait: float = 1.0,
    ) -> None:
        super().__init__()
        self.store = store
        self.bus = bus
        self.batch_size = check_count(batch_size, "batch_size")
        self.idle_wait = check_seconds(idle_wait, "idle_wait")
        self._owns_checkpoints = checkpoints is None
        self.checkpoints = checkpoints if checkpoints is not None else read_models_for(store)
        with self.checkpoints.transaction() as tx:
            tx.execute(RELAYS_DDL)
            tx.execute(
                "INSERT INTO cronica_relays (name, position, published) VALUES (?, 0, 0)"
                " ON CONFLICT (name) DO NOTHING",
                [bus.name],
            )
        self.last_error: BaseException | None = None
        largest = bus.max_message_bytes
        if largest is not None and store.max_event_size + ENVELOPE_ALLOWANCE > largest:
            log.warning(
                "relay to %s: the store takes events of up to %d bytes, the bus messages of up"
                " to %d: an event that large would stop the relay (raise the bus's limit or"
                " lower the store's max_event_size)",
                bus.name, store.max_event_size, largest,
            )  # fmt: skip

    @property
    def position(self) -> int:
        """The checkpoint: every event up to it has been published."""
        rows = self.checkpoints.query(
            "SELECT position FROM cronica_relays WHERE name = ?", [self.bus.name]
        )
        return int(rows[0][0])

    def seek(self, position: int) -> None:
        """Move the checkpoint to ``position``: only later events are published from now on (a
        new bus that should not get the history, say)."""
        check_count(position, "the position to seek to", minimum=0)
        with self.checkpoints.transaction() as tx:
            tx.execute(
                "UPDATE cronica_relays SET position = ? WHERE name = ?", [position, self.bus.name]
            )

    def lag(self) -> int:
        """Events in the log that the bus has not had yet."""
        return self.store.count_events(after=self.position)

    def run_once(self) -> int:
        """Publish one page of the log after the checkpoint; return how many events it held."""
        after = self.position
        events = self.store.read_all(after=after, limit=self.batch_size)
        if not events:
            return 0
        try:
            added = self.bus.publish(events)
        except MessageTooLargeError as exc:
            # The events before it are on the bus: the checkpoint moves up to them, so that
            # they are not sent again while an operator decides (seek past it, or raise the
            # bus's limit).
            before = [e for e in events if e.position < exc.position]
            if before:
                self._move_checkpoint(after, before[-1].position, exc.published)
            raise
        self._move_checkpoint(after, events[-1].position, added)
        return len(events)

    def _still_before(self, position: int) -> bool:
        """Whether the checkpoint is still short of ``position`` (yes when it cannot be read)."""
        try:
            return self.position < position
        except StoreError:
            return True

    def _move_checkpoint(self, after: int, position: int, added: int) -> None:
        """Move the checkpoint from ``after`` to ``position``, counting ``added`` published,
        unless another relay moved it meanwhile (then the next page starts afresh)."""
        with self.checkpoints.transaction() as tx:
            changed = tx.execute(
                "UPDATE cronica_relays SET position = ?, published = published + ?"
                " WHERE name = ? AND position = ?",
                [position, added, self.bus.name, after],
            )
        if changed != 1:
            log.warning("relay %s: the checkpoint moved under this relay", self.bus.name)

    def run_until_caught_up(self) -> int:
        """Publish pages until the log's end; return the events read."""
        total = 0
        while read := self.run_once():
            total += read
        return total

    def run_forever(self) -> None:
        """Publish until :meth:`stop`, waiting for new events between pages; a bus or store
        that cannot be reached is retried after a pause that grows to 5 s. An event too large
        for the bus (``MessageTooLargeError``) parks the relay, with the events before it
        published, until the checkpoint is moved past it (:meth:`seek`)."""
        pause = 0.1
        while not self._stopping.is_set():
            try:
                read = self.run_once()
                pause = 0.1
            except MessageTooLargeError as exc:  # sending it again cannot help: park
                self.last_error = exc
                log.error("relay %s: %s; waiting for the checkpoint to move", self.bus.name, exc)
                while not self._stopping.is_set() and self._still_before(exc.position):
                    self._stopping.wait(self.idle_wait)
                continue
            except StoreError as exc:  # BusError is one
                self.last_error = exc
                level = logging.WARNING if isinstance(exc, BusUnavailableError) else logging.ERROR
                log.log(level, "relay %s: %s (retrying in %.1f s)", self.bus.name, exc, pause)
                self._stopping.wait(pause)
                pause = min(pause * 2, 5.0)
                continue
            if read == 0 and not self._stopping.is_set():
                try:
                    self.store.wait_for_events(self.position, self.idle_wait)
                except StoreError:
                    self._stopping.wait(self.idle_wait)

    def _release(self) -> None:
        if self._owns_checkpoints:
            self.checkpoints.close()
