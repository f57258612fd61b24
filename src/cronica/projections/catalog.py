"""The projection catalog: one row per projection in the read-model database.

The row holds the checkpoint (``position``), and every batch updates it in the same transaction
as the batch's writes to the read model: after a crash the read model and its checkpoint are
always from the same commit, so the projector redoes exactly what was lost (exactly-once in
effect). The row also holds the lease (which runner may write), the last failure and the state of
a rebuild. Operator actions (skip, retry, rebuild) are kept in ``cronica_projection_actions``.

Times are seconds since the epoch, from the database's clock.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cronica._validation import check_count, check_several
from cronica.errors import (
    InvalidInputError,
    LeaseLostError,
    ProjectionNotFoundError,
    ProjectionStateError,
)
from cronica.events import RecordedEvent
from cronica.readmodels.base import ReadModelDatabase, ReadModelTransaction

_COLUMNS = (
    "name, version, generation, position, events_processed, state, error, failed_position,"
    " failed_event_id, failed_event_type, failed_track, failed_at, rebuild_requested,"
    " rebuild_generation, rebuild_version, rebuild_position, rebuild_events, rebuild_total,"
    " rebuild_started_at, lease_owner, lease_until, updated_at"
)

CATALOG_DDL = (
    """CREATE TABLE IF NOT EXISTS cronica_projections (
        name               TEXT PRIMARY KEY,
        version            INTEGER NOT NULL,
        generation         INTEGER NOT NULL,
        position           BIGINT NOT NULL,
        events_processed   BIGINT NOT NULL,
        state              TEXT NOT NULL,
        error              TEXT,
        failed_position    BIGINT,
        failed_event_id    TEXT,
        failed_event_type  TEXT,
        failed_track       TEXT,
        failed_at          DOUBLE PRECISION,
        rebuild_requested  INTEGER NOT NULL,
        rebuild_generation INTEGER,
        rebuild_version    INTEGER,
        rebuild_position   BIGINT,
        rebuild_events     BIGINT,
        rebuild_total      BIGINT,
        rebuild_started_at DOUBLE PRECISION,
        lease_owner        TEXT,
        lease_until        DOUBLE PRECISION NOT NULL,
        updated_at         DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS cronica_projection_actions (
        action_id   TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        action      TEXT NOT NULL,
        position    BIGINT,
        event_id    TEXT,
        event_type  TEXT,
        actor       TEXT NOT NULL,
        reason      TEXT NOT NULL,
        at          DOUBLE PRECISION NOT NULL
    )""",
)

LIVE = "live"
CATCHING_UP = "catching_up"
FAILED = "failed"
STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ProjectionRecord:
    """A projection's catalog row, as stored."""

    name: str
    version: int
    generation: int
    position: int
    events_processed: int
    state: str
    error: str | None
    failed_position: int | None
    failed_event_id: str | None
    failed_event_type: str | None
    failed_track: str | None
    failed_at: float | None
    rebuild_requested: int
    rebuild_generation: int | None
    rebuild_version: int | None
    rebuild_position: int | None
    rebuild_events: int | None
    rebuild_total: int | None
    rebuild_started_at: float | None
    lease_owner: str | None
    lease_until: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ProjectionAction:
    """An operator action on a projection, as recorded."""

    action_id: str
    name: str
    action: str
    position: int | None
    event_id: str | None
    event_type: str | None
    actor: str
    reason: str
    at: float


class Catalog:
    """Reads and writes the catalog rows of one read-model database."""

    def __init__(self, db: ReadModelDatabase) -> None:
        self.db = db
        self._now = db.now_sql

    def _sql(self, text: str) -> str:
        return text.replace("{now}", self._now)

    def create(self) -> None:
        """Create the catalog tables if missing (safe from several processes at once)."""
        with self.db.transaction() as tx:
            if self.db.dialect == "postgresql":
                tx.execute("SELECT pg_advisory_xact_lock(hashtext('cronica.projections.catalog'))")
            for ddl in CATALOG_DDL:
                tx.execute(ddl)

    def exists(self) -> bool:
        return self.db.table_exists("cronica_projections")

    def now(self) -> float:
        return float(self.db.query(f"SELECT {self._now}")[0][0])

    # -- reading -----------------------------------------------------------------------------

    def records(self) -> dict[str, ProjectionRecord]:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM cronica_projections ORDER BY name")
        return {row[0]: ProjectionRecord(*row) for row in rows}

    def record(self, name: str) -> ProjectionRecord:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM cronica_projections WHERE name = ?", [name])
        if not rows:
            raise ProjectionNotFoundError(name)
        return ProjectionRecord(*rows[0])

    def position(self, name: str) -> int | None:
        rows = self.db.query("SELECT position FROM cronica_projections WHERE name = ?", [name])
        return int(rows[0][0]) if rows else None

    def wait_for(
        self,
        position: int,
        timeout: float,
        names: Sequence[str],
        pause: Callable[[float], object] = time.sleep,
    ) -> bool:
        """Wait until every projection in ``names`` has applied the log up to ``position``
        (read-your-writes for a query that carries a minimum position); False if ``timeout``
        seconds pass first. Works from any process: it polls the checkpoints, every 2 ms at
        first, backing off to 20 ms (``pause`` sleeps between looks; a projector passes one
        that its commits cut short)."""
        check_count(position, "position", minimum=0)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not (math.isfinite(timeout) and timeout >= 0)
        ):
            raise InvalidInputError(f"timeout must be a finite number of seconds, not {timeout!r}")
        if not check_several(names, "names"):
            raise InvalidInputError("names must name at least one projection")
        deadline = time.monotonic() + timeout
        step = 0.002
        while True:
            rows = self.db.query(
                "SELECT name, position FROM cronica_projections WHERE name IN"
                f" ({', '.join('?' * len(names))})",
                list(names),
            )
            reached = {name: int(at) for name, at in rows}
            missing = [name for name in names if name not in reached]
            if missing:
                raise ProjectionNotFoundError(missing[0])
            if all(at >= position for at in reached.values()):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            pause(min(step, left))
            step = min(step * 2, 0.02)

    def actions(self, name: str | None = None) -> list[ProjectionAction]:
        sql = "SELECT * FROM cronica_projection_actions"
        params: list[Any] = []
        if name is not None:
            sql += " WHERE name = ?"
            params.append(name)
        rows = self.db.query(sql + " ORDER BY at, action_id", params)
        return [ProjectionAction(*row) for row in rows]

    # -- leases ------------------------------------------------------------------------------

    def register(self, tx: ReadModelTransaction, name: str, version: int) -> bool:
        """Add a row for a projection never run before (generation 1, at position 0); return
        whether it was added."""
        added = tx.execute(
            self._sql(
                "INSERT INTO cronica_projections (name, version, generation, position,"
                " events_processed, state, rebuild_requested, lease_until, updated_at)"
                " VALUES (?, ?, 1, 0, 0, ?, 0, 0, {now}) ON CONFLICT (name) DO NOTHING"
            ),
            [name, version, CATCHING_UP],
        )
        return added == 1

    def acquire(self, tx: ReadModelTransaction, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease on ``name``; False while another runner's lease is valid."""
        changed = tx.execute(
            self._sql(
                "UPDATE cronica_projections SET lease_owner = ?, lease_until = {now} + ?"
                " WHERE name = ? AND (lease_owner = ? OR lease_owner IS NULL"
                " OR lease_until < {now})"
            ),
            [owner, ttl, name, owner],
        )
        return changed == 1

    def take_from(
        self, tx: ReadModelTransaction, name: str, owner: str, previous: str, ttl: float
    ) -> bool:
        """Take the lease from ``previous``, a runner known to be dead, before it runs out."""
        changed = tx.execute(
            self._sql(
                "UPDATE cronica_projections SET lease_owner = ?, lease_until = {now} + ?"
                " WHERE name = ? AND lease_owner = ?"
            ),
            [owner, ttl, name, previous],
        )
        return changed == 1

    def release(self, tx: ReadModelTransaction, name: str, owner: str) -> None:
        tx.execute(
            "UPDATE cronica_projections SET lease_owner = NULL, lease_until = 0"
            " WHERE name = ? AND lease_owner = ?",
            [name, owner],
        )

    # -- progress ----------------------------------------------------------------------------

    def claim(
        self,
        tx: ReadModelTransaction,
        name: str,
        owner: str,
        ttl: float,
        *,
        rebuild: bool,
        position: int,
    ) -> bool:
        """First statement of a batch's transaction: check that ``owner`` holds the lease and
        the track is still at ``position``, lock the row (PostgreSQL) until the batch commits,
        and renew the lease. Raises :class:`LeaseLostError` if another runner holds it; returns
        False if the checkpoint moved meanwhile (an operator skipped an event, say)."""
        column = "rebuild_position" if rebuild else "position"
        changed = tx.execute(
            self._sql(
                "UPDATE cronica_projections SET lease_until = {now} + ?"
                f" WHERE name = ? AND lease_owner = ? AND {column} = ? AND state <> ?"
            ),
            [ttl, name, owner, position, FAILED],
        )
        if changed == 1:
            return True
        rows = tx.query("SELECT lease_owner FROM cronica_projections WHERE name = ?", [name])
        if not rows or rows[0][0] != owner:
            raise LeaseLostError(name)
        return False

    def advance(
        self,
        tx: ReadModelTransaction,
        name: str,
        owner: str,
        ttl: float,
        *,
        rebuild: bool,
        position: int,
        events: int,
        state: str,
    ) -> None:
        """Move a track's checkpoint, in the transaction that wrote its batch, and renew the
        lease. Raises :class:`LeaseLostError` (the caller rolls back) if another runner holds
        the lease now: that is what keeps two runners from both writing a batch."""
        if rebuild:
            sql = (
                "UPDATE cronica_projections SET rebuild_position = ?,"
                " rebuild_events = rebuild_events + ?, lease_until = {now} + ?, updated_at = {now}"
                " WHERE name = ? AND lease_owner = ?"
            )
            params: list[Any] = [position, events, ttl, name, owner]
        else:
            sql = (
                "UPDATE cronica_projections SET position = ?,"
                " events_processed = events_processed + ?, state = ?, lease_until = {now} + ?,"
                " updated_at = {now} WHERE name = ? AND lease_owner = ?"
            )
            params = [position, events, state, ttl, name, owner]
        self._update_held(tx, name, sql, params)

    def set_state(self, tx: ReadModelTransaction, name: str, owner: str, state: str) -> None:
        tx.execute(
            self._sql(
                "UPDATE cronica_projections SET state = ?, updated_at = {now}"
                " WHERE name = ? AND lease_owner = ? AND state <> ?"
            ),
            [state, name, owner, FAILED],
        )

    def fail(
        self,
        tx: ReadModelTransaction,
        name: str,
        owner: str,
        *,
        rebuild: bool,
        event: RecordedEvent,
        error: BaseException,
    ) -> None:
        """Record that ``event`` failed in a handler: the projection stops there."""
        message = f"{type(error).__name__}: {error}"[:4000]
        track = "rebuild" if rebuild else "live"
        self._update_held(
            tx,
            name,
            "UPDATE cronica_projections SET state = ?, error = ?, failed_position = ?,"
            " failed_event_id = ?, failed_event_type = ?,"
            # Both tracks met the event (a rebuild at the live track's version, in one batch):
            # each stopped just before it, and skipping it moves both.
            " failed_track = CASE WHEN state = ? AND failed_event_id = ? AND failed_track <> ?"
            " THEN 'both' ELSE ? END, failed_at = {now},"
            " updated_at = {now} WHERE name = ? AND lease_owner = ?",
            [
                FAILED,
                message,
                event.position,
                str(event.event_id),
                event.event_type,
                FAILED,
                str(event.event_id),
                track,
                track,
                name,
                owner,
            ],
        )

    # -- rebuilds ----------------------------------------------------------------------------

    def start_rebuild(
        self, tx: ReadModelTransaction, name: str, owner: str, version: int, total: int
    ) -> int:
        """Begin filling the next generation; return its number."""
        generation = int(
            tx.query(
                "SELECT generation + 1 FROM cronica_projections WHERE name = ?",
                [name],
            )[0][0]
        )
        self._update_held(
            tx,
            name,
            "UPDATE cronica_projections SET rebuild_requested = 0, rebuild_generation = ?,"
            " rebuild_version = ?, rebuild_position = 0, rebuild_events = 0,"
            " rebuild_total = ?, rebuild_started_at = {now}, updated_at = {now}"
            " WHERE name = ? AND lease_owner = ?",
            [generation, version, total, name, owner],
        )
        return generation

    def finish_rebuild(self, tx: ReadModelTransaction, name: str, owner: str) -> None:
        """Make the rebuilt generation the live one."""
        self._update_held(
            tx,
            name,
            "UPDATE cronica_projections SET generation = rebuild_generation,"
            " version = rebuild_version, position = rebuild_position,"
            " events_processed = rebuild_events, rebuild_generation = NULL,"
            " rebuild_version = NULL, rebuild_position = NULL, rebuild_events = NULL,"
            " rebuild_total = NULL, rebuild_started_at = NULL, updated_at = {now}"
            " WHERE name = ? AND lease_owner = ?",
            [name, owner],
        )

    # -- operator actions ----------------------------------------------------------------------

    def request_rebuild(self, name: str, actor: str, reason: str) -> None:
        """Ask the runner of ``name`` to rebuild it (it starts within its next iterations)."""
        with self.db.transaction() as tx:
            record = self._locked(tx, name)
            if record.rebuild_generation is not None:
                raise ProjectionStateError(f"projection {name!r} is already being rebuilt")
            tx.execute(
                "UPDATE cronica_projections SET rebuild_requested = 1 WHERE name = ?", [name]
            )
            self._log(tx, name, "rebuild", None, actor, reason)

    def skip(self, name: str, actor: str, reason: str) -> ProjectionRecord:
        """Pass over the event a failed projection stopped at: it is never applied."""
        return self._clear_failure(name, actor, reason, skip=True)

    def retry(self, name: str, actor: str, reason: str) -> ProjectionRecord:
        """Clear a failure: the runner tries the failed event again."""
        return self._clear_failure(name, actor, reason, skip=False)

    def clear_failure(
        self, tx: ReadModelTransaction, name: str, moves: Sequence[tuple[str, int]] = ()
    ) -> None:
        """Forget a projection's failure (if it has one), so its runner goes on; ``moves`` set
        checkpoint columns too (skipping the failed event)."""
        changes = "state = ?, error = NULL, failed_position = NULL, failed_event_id = NULL,"
        changes += " failed_event_type = NULL, failed_track = NULL, failed_at = NULL"
        params: list[Any] = [CATCHING_UP]
        for column, position in moves:
            changes += f", {column} = ?"
            params.append(position)
        sql = f"UPDATE cronica_projections SET {changes}, updated_at = {self._now}"
        tx.execute(sql + " WHERE name = ? AND state = ?", [*params, name, FAILED])

    def _clear_failure(self, name: str, actor: str, reason: str, *, skip: bool) -> ProjectionRecord:
        with self.db.transaction() as tx:
            record = self._locked(tx, name)
            if record.state != FAILED or record.failed_position is None:
                raise ProjectionStateError(f"projection {name!r} has not failed")
            columns = {
                "live": ["position"],
                "rebuild": ["rebuild_position"],
                "both": ["position", "rebuild_position"],
            }[record.failed_track or "live"]
            # Skipping: the checkpoints move onto the failed event, so it counts as done.
            moves = [(column, record.failed_position) for column in columns] if skip else []
            self.clear_failure(tx, name, moves)
            self._log(tx, name, "skip" if skip else "retry", record, actor, reason)
            return record

    def _update_held(
        self, tx: ReadModelTransaction, name: str, sql: str, params: Sequence[Any]
    ) -> None:
        """Run an ``UPDATE ... WHERE name = ? AND lease_owner = ?`` that only the lease holder
        may make; :class:`LeaseLostError` if it changed no row (another runner holds it)."""
        if tx.execute(self._sql(sql), params) != 1:
            raise LeaseLostError(name)

    def _locked(self, tx: ReadModelTransaction, name: str) -> ProjectionRecord:
        if not self.exists():  # no projector ever ran on this database
            raise ProjectionNotFoundError(name)
        suffix = " FOR UPDATE" if self.db.dialect == "postgresql" else ""
        rows = tx.query(
            f"SELECT {_COLUMNS} FROM cronica_projections WHERE name = ?{suffix}", [name]
        )
        if not rows:
            raise ProjectionNotFoundError(name)
        return ProjectionRecord(*rows[0])

    def _log(
        self,
        tx: ReadModelTransaction,
        name: str,
        action: str,
        record: ProjectionRecord | None,
        actor: str,
        reason: str,
    ) -> None:
        tx.execute(
            self._sql(
                "INSERT INTO cronica_projection_actions (action_id, name, action, position,"
                " event_id, event_type, actor, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {now})"
            ),
            [
                str(uuid.uuid4()),
                name,
                action,
                None if record is None else record.failed_position,
                None if record is None else record.failed_event_id,
                None if record is None else record.failed_event_type,
                actor,
                reason,
            ],
        )
