"""The in-process bus: consumer groups that read the store's own log (no broker).

For the embedded default (one process, one SQLite file, no Redis) the store's global log is the
bus: a :class:`LogConsumer` follows it from its group's checkpoint and hands each event to its
handler, with the same handler API and the same guarantees as a consumer of the Redis stream
(:class:`~cronica.bus.redis_consumer.StreamConsumer`):

- at least once: the checkpoint moves past an event only after its handler returned, so a crash
  redelivers what was in hand; handlers de-duplicate by event id where acting twice matters;
- a failing event is retried (``max_attempts`` times in all), then recorded in
  ``cronica_dead_letters`` with its error, and the group goes on.

Checkpoints and dead letters live in the read-model database (by default the store's own).

>>> import cronica
>>> store = cronica.connect("memory://")
>>> _ = store.append("a", [cronica.NewEvent("AccountCreated", {"owner": "Ana"})])
>>> seen = []
>>> with LogConsumer(store, lambda e: seen.append(e.event_type), group="demo") as consumer:
...     consumer.run_once()
1
>>> seen
['AccountCreated']
"""

from __future__ import annotations

import logging

from cronica._background import BackgroundLoop
from cronica.bus.base import Handler
from cronica.errors import InvalidInputError, StoreError
from cronica.events import RecordedEvent
from cronica.readmodels import read_models_for
from cronica.readmodels.base import ReadModelDatabase
from cronica.store.base import EventStore

log = logging.getLogger("cronica.bus")


CONSUMERS_DDL = (
    """CREATE TABLE IF NOT EXISTS cronica_consumers (
        group_name TEXT PRIMARY KEY,
        position   BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS cronica_dead_letters (
        group_name TEXT NOT NULL,
        event_id   TEXT NOT NULL,
        position   BIGINT NOT NULL,
        event_type TEXT NOT NULL,
        error      TEXT NOT NULL,
        attempts   INTEGER NOT NULL,
        PRIMARY KEY (group_name, event_id)
    )""",
)


class LogConsumer(BackgroundLoop):
    """Group ``group`` following ``store``'s log, handing each event to ``handler``."""

    thread_name = "cronica-consumer"
    store: EventStore

    def __init__(
        self,
        store: EventStore,
        handler: Handler,
        *,
        group: str,
        checkpoints: ReadModelDatabase | None = None,
        max_attempts: int = 5,
        batch: int = 100,
        idle_wait: float = 1.0,
    ) -> None:
        if max_attempts < 1 or batch < 1 or not group:
            raise InvalidInputError("a consumer needs a group, max_attempts and batch >= 1")
        super().__init__()
        self.store = store
        self.handler = handler
        self.group = group
        self.max_attempts = max_attempts
        self.batch = batch
        self.idle_wait = idle_wait
        self._owns_checkpoints = checkpoints is None
        self.checkpoints = checkpoints if checkpoints is not None else read_models_for(store)
        with self.checkpoints.transaction() as tx:
            for ddl in CONSUMERS_DDL:
                tx.execute(ddl)
            tx.execute(
                "INSERT INTO cronica_consumers (group_name, position) VALUES (?, 0)"
                " ON CONFLICT (group_name) DO NOTHING",
                [group],
            )
        self._attempts: dict[str, int] = {}

    @property
    def position(self) -> int:
        rows = self.checkpoints.query(
            "SELECT position FROM cronica_consumers WHERE group_name = ?", [self.group]
        )
        return int(rows[0][0])

    def dead_letters(self) -> list[tuple[str, int, str, str, int]]:
        """(event id, position, event type, error, attempts) of the events given up on."""
        rows = self.checkpoints.query(
            "SELECT event_id, position, event_type, error, attempts FROM cronica_dead_letters"
            " WHERE group_name = ? ORDER BY position",
            [self.group],
        )
        return [(str(a), int(b), str(c), str(d), int(e)) for a, b, c, d, e in rows]

    def run_once(self) -> int:
        """Handle the next events; return how many were dealt with (handled or dead-lettered).
        A failure short of ``max_attempts`` stops the batch there: the event is retried on the
        next call."""
        after = self.position
        events = self.store.read_all(after=after, limit=self.batch)
        done = 0
        reached = after
        for event in events:
            if not self._deliver(event):
                break
            done += 1
            reached = event.position
        if reached != after:
            with self.checkpoints.transaction() as tx:
                # Only from where this batch began: a second consumer of the group (another
                # process) that got further is never moved back.
                tx.execute(
                    "UPDATE cronica_consumers SET position = ? WHERE group_name = ?"
                    " AND position = ?",
                    [reached, self.group, after],
                )
        return done

    def _deliver(self, event: RecordedEvent) -> bool:
        """True when the event is dealt with (handled, or given up on and recorded)."""
        key = str(event.event_id)
        try:
            self.handler(event)
        except Exception as exc:  # a handler's failure must not stop the group for good
            attempts = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempts
            if attempts < self.max_attempts:
                log.warning("group %s: event %s failed (attempt %d of %d): %s",
                            self.group, key, attempts, self.max_attempts, exc)  # fmt: skip
                return False
            log.error("group %s: event %s is a dead letter: %s", self.group, key, exc)
            with self.checkpoints.transaction() as tx:
                tx.execute(
                    "INSERT INTO cronica_dead_letters (group_name, event_id, position,"
                    " event_type, error, attempts) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (group_name, event_id) DO NOTHING",
                    [self.group, key, event.position, event.event_type,
                     f"{type(exc).__name__}: {exc}", attempts],
                )  # fmt: skip
        self._attempts.pop(key, None)
        return True

    def run_forever(self) -> None:
        """Handle events until :meth:`stop`, waiting for new ones in between; after a failure
        short of ``max_attempts``, pause before trying again (growing to 5 s)."""
        pause = 0.05
        while not self._stopping.is_set():
            try:
                done = self.run_once()
            except StoreError as exc:
                log.warning("group %s: %s", self.group, exc)
                done = 0
            if self._attempts:
                self._stopping.wait(pause)
                pause = min(pause * 2, 5.0)
                continue
            pause = 0.05
            if done == 0 and not self._stopping.is_set():
                try:
                    self.store.wait_for_events(self.position, self.idle_wait)
                except StoreError:
                    self._stopping.wait(self.idle_wait)

    def _release(self) -> None:
        if self._owns_checkpoints:
            self.checkpoints.close()
