"""Running sagas: steps in order, compensation in reverse order, deadlines, crash recovery.

A :class:`SagaRunner` reacts to the events of its saga type's streams (delivered by a consumer
of the log or of the bus: :meth:`SagaRunner.handle` is an event handler) and to its timers,
and drives each saga as far as it can go:

1. while steps remain, it runs the next one and records ``SagaStepCompleted``; a step that is
   refused (:class:`StepFailedError`, or a domain error such as an ``InvariantError``) is recorded
   as ``SagaStepFailed``, and a step that keeps failing otherwise (the store or a service down)
   is retried with backoff and given up after ``max_attempts``;
2. after a failure, or when the saga's deadline passes first, it runs the compensations of the
   completed steps, newest first, each recorded as ``SagaStepCompensated``; a compensation is
   retried until it succeeds (it must not be refused);
3. it records the ending: ``SagaCompleted``, ``SagaFailed`` or ``SagaCompensated``.

**No step runs twice.** A step receives an idempotency key (saga type, saga id, step name) for
its command (``Repository.execute(..., idempotency_key=key)``): the command's event ids derive
from it, so when a runner crashed after the command but before recording the step, the next
attempt finds the events already stored and does nothing again. Two runners advancing one
saga at once are safe too: both record with the saga's version as the expected version, and
the loser reloads; and a step recorded as failed is fenced off (:meth:`SagaRunner._save_without`),
so a racing run of it can never be stored afterwards.

**Timers are persisted.** ``cronica_saga_timers`` (in the read-model database) holds, per saga
still running, when to look at it again: its deadline, or the next retry of a failing step.
The runner's loop (:meth:`SagaRunner.start`) fires the timers that are due; the table is
rebuilt from the sagas' own events as they are delivered, so it survives restarts.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Generic, TypeVar

from cronica._background import BackgroundLoop
from cronica._validation import check_count, check_seconds
from cronica.audit import Audit, audit_context, current_audit
from cronica.errors import (
    ConcurrencyError,
    CronicaError,
    DuplicateEventError,
    InvalidInputError,
    LeaseLostError,
    StoreError,
    StreamNotFoundError,
)
from cronica.events import RecordedEvent, parse_timestamp
from cronica.readmodels.base import ReadModelDatabase
from cronica.repository import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    CommandResult,
    Repository,
    stored_run,
)
from cronica.sagas.state import Saga, SagaStarted, saga_events
from cronica.store.base import EventStore

log = logging.getLogger("cronica.sagas")

S = TypeVar("S", bound=Saga)

StepAction = Callable[[S, str], object]
"""A step or compensation: called with the saga and the idempotency key for its command."""

TIMERS_DDL = """CREATE TABLE IF NOT EXISTS cronica_saga_timers (
    saga_type  TEXT NOT NULL,
    saga_id    TEXT NOT NULL,
    due_ms     BIGINT NOT NULL,
    attempts   INTEGER NOT NULL,
    at_version INTEGER NOT NULL,
    PRIMARY KEY (saga_type, saga_id)
)"""
"""One row per saga to look at again: when, and how many attempts of its next move (the move
from saga version ``at_version``) have failed so far."""

DELIVERY_ATTEMPTS = 2**31 - 1
"""How often a consumer should try to deliver an event to :meth:`SagaRunner.handle`: without
end. The handler fails only when it cannot keep the saga's timer; a consumer that gave up on
the event (a dead letter) would leave the saga with nothing to move it on."""

Timer = tuple[int, int, int]
"""A saga's timer: due (ms since the epoch), failed attempts, the saga version they were at."""

MAX_TRANSITIONS = 1000
"""How many transitions one call of :meth:`SagaRunner.advance` makes at most."""


class _SagaMoved(Exception):  # noqa: N818 (a signal inside the runner, not an error)
    """The saga in hand is not the stored one any more: load it again."""


class _Stalled(Exception):  # noqa: N818 (a signal inside the runner, not an error)
    """The saga's next move could not be made now (its step's service or the store is down)."""

    def __init__(self, version: int, deadline: datetime | None, cause: Exception) -> None:
        super().__init__(str(cause))
        self.version = version
        self.deadline = deadline
        self.cause = cause


ENDINGS: Final = frozenset({"SagaCompleted", "SagaFailed", "SagaCompensated"})
"""The event types that end a saga."""


class StepFailedError(CronicaError):
    """Raised by a step whose work was refused (the car rental has no car): the saga records
    the failure and compensates. Any ``CronicaError`` that is not about the store's
    availability counts as a refusal too (an ``InvariantError``, an unknown aggregate)."""


@dataclass(frozen=True)
class Step(Generic[S]):
    """One step of a saga: ``action`` does it; ``compensate``, when given, undoes it."""

    name: str
    action: StepAction[S]
    compensate: StepAction[S] | None = None


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` means the step was refused for good (compensate), not that it could not
    be tried now (retry): a domain error, not the store's or a service's availability."""
    return isinstance(exc, CronicaError) and not isinstance(
        exc, StoreError | ConcurrencyError | LeaseLostError
    )


class Sagas(Generic[S]):
    """Start and read sagas of one class: what an API needs (the runner does the rest)."""

    def __init__(self, store: EventStore, saga_class: type[S]) -> None:
        check_saga_class(saga_class)
        self.store = store
        self.saga_class = saga_class
        self.repository = Repository(store, saga_class, saga_events, snapshot_every=None)

    def begin(
        self, saga_id: str, data: Mapping[str, Any], *, audit: Audit | None = None
    ) -> CommandResult[S]:
        """Start a saga with input ``data`` (JSON-ready values). Starting it again with the
        same data changes nothing (the first start's result comes back, ``replayed``); with
        other data it raises ``ConcurrencyError``."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"a saga's data must be a mapping, not {type(data).__name__}")
        timeout = self.saga_class.timeout
        deadline = None if timeout is None else datetime.now(UTC) + timedelta(seconds=timeout)
        payload = dict(data)
        try:
            return self.repository.create(
                saga_id, lambda saga: saga.begin(payload, deadline), audit=audit
            )
        except ConcurrencyError:
            saga = self.repository.load(saga_id)
            if saga.data != as_stored(payload):
                raise
            first = self.store.read_stream(saga_id, limit=1)[0]
            return CommandResult(saga_id, 1, 1, first.position, (), saga, replayed=True)

    def get(self, saga_id: str) -> S:
        """The saga as it is now; ``StreamNotFoundError`` when there is none."""
        return self.repository.load(saga_id)


def check_saga_class(saga_class: type[Saga]) -> None:
    """``InvalidInputError`` unless the class names its steps (distinct, a tuple of names whose
    idempotency keys fit, see :func:`step_key`) and a timeout that is None or a number of
    seconds."""
    name, steps = saga_class.__name__, saga_class.steps
    if (
        not isinstance(steps, tuple)
        or not steps
        or not all(isinstance(step, str) and step for step in steps)
        or len(set(steps)) != len(steps)
    ):
        raise InvalidInputError(f"{name} needs a tuple of steps with distinct names")
    longest = max(len(step_key(saga_class.aggregate_type, "x" * 256, s, undo=True)) for s in steps)
    if longest > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInputError(
            f"{name}: its type and step names make idempotency keys of {longest} characters"
            f" (at most {MAX_IDEMPOTENCY_KEY_LENGTH}): shorten them"
        )
    if saga_class.timeout is not None:
        check_seconds(saga_class.timeout, f"{name}.timeout")


def step_key(saga_type: str, saga_id: str, step: str, *, undo: bool = False) -> str:
    """The idempotency key of a saga's step (or of its compensation): ``<type>/<id>/<step>``
    (``/undo``), or with the id's SHA-256 in place of a saga id so long that the key would pass
    :data:`MAX_IDEMPOTENCY_KEY_LENGTH` (an id may have 255 characters)."""
    key = f"{saga_type}/{saga_id}/{step}" + ("/undo" if undo else "")
    if len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        return key
    digest = hashlib.sha256(saga_id.encode()).hexdigest()
    return f"{saga_type}/sha256:{digest}/{step}" + ("/undo" if undo else "")


def as_stored(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as it reads back from the store (JSON types: a Decimal becomes a string)."""
    return dict(saga_events.to_new_event(SagaStarted(data=data)).data["data"])


class SagaRunner(BackgroundLoop, Generic[S]):
    """Drives the sagas of one class. :meth:`handle` is its event handler (give it to a
    consumer of the log or the bus); :meth:`start` runs its timers in a background thread.

    ``timers`` is the read-model database for ``cronica_saga_timers``; ``retry_delay`` the first
    pause after a step that could not be tried (doubling up to ``max_retry_delay``);
    ``max_attempts`` how many times a step is tried before it counts as failed.
    """

    thread_name = "cronica-sagas"

    def __init__(
        self,
        sagas: Sagas[S],
        steps: Iterable[Step[S]],
        *,
        timers: ReadModelDatabase,
        max_attempts: int = 10,
        retry_delay: float = 0.1,
        max_retry_delay: float = 30.0,
        tick: float = 0.2,
    ) -> None:
        super().__init__()
        self.sagas = sagas
        steps = list(steps)
        self.steps = {step.name: step for step in steps}
        if len(self.steps) != len(steps):
            raise InvalidInputError("the runner was given a step twice")
        names = sagas.saga_class.steps
        if set(self.steps) != set(names):
            raise InvalidInputError(
                f"{sagas.saga_class.__name__} names the steps {list(names)}; the runner was"
                f" given {list(self.steps)}"
            )
        check_count(max_attempts, "max_attempts")
        check_seconds(retry_delay, "retry_delay")
        check_seconds(max_retry_delay, "max_retry_delay")
        check_seconds(tick, "tick")
        self.saga_type = sagas.saga_class.aggregate_type
        self.group = f"saga-{self.saga_type}"
        """The consumer group name to deliver this runner's events under."""
        self.timers = timers
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.tick = tick
        with timers.transaction() as tx:
            tx.execute(TIMERS_DDL)

    # -- reacting ----------------------------------------------------------------------------

    def handle(self, event: RecordedEvent) -> None:
        """The event handler: an event of one of this runner's sagas moves that saga on."""
        if event.aggregate_type != self.saga_type or event.event_type in ENDINGS:
            return  # an ending moves nothing on: the saga is finished
        if event.event_type == "SagaStarted" and event.data.get("deadline"):
            deadline = parse_timestamp(event.data["deadline"])
            self._set_timer(event.aggregate_id, deadline, 0, event.version, keep=True)
        self.drive(event.aggregate_id)

    def fire_due_timers(self, limit: int = 100) -> int:
        """Advance the sagas whose timers are due; return how many."""
        rows = self.timers.query(
            "SELECT saga_id, due_ms, attempts, at_version FROM cronica_saga_timers"
            " WHERE saga_type = ? AND due_ms <= ? ORDER BY due_ms LIMIT ?",
            [self.saga_type, _ms(datetime.now(UTC)), limit],
        )
        for saga_id, due_ms, attempts, at_version in rows:
            self._drive(str(saga_id), (int(due_ms), int(attempts), int(at_version)))
        return len(rows)

    def drive(self, saga_id: str) -> S | None:
        """Advance one saga, keeping its timer: gone once it ends, at the next retry after a
        move could not be made (never later than its deadline). Returns the saga, or None when
        it could not be advanced now (it will be retried)."""
        return self._drive(saga_id, self._timer(saga_id))

    def _drive(self, saga_id: str, timer: Timer | None) -> S | None:
        """:meth:`drive`, knowing the saga's timer or that it has none; the timer table is
        written only when the timer changes."""
        attempts, at_version = (0, -1) if timer is None else (timer[1], timer[2])
        last_try = attempts + 1 >= self.max_attempts
        try:
            saga = self.advance(saga_id, give_up_at=at_version if last_try else None)
        except StreamNotFoundError:  # no such saga (a forged or foreign event): nothing to do
            log.warning("saga %s: there is no such %s saga", saga_id, self.saga_type)
            if timer is not None:
                self._clear_timer(saga_id)
            return None
        except Exception as exc:  # the store or a step's service is down, or a step's defect
            stalled = exc if isinstance(exc, _Stalled) else None
            version = at_version if stalled is None else stalled.version
            # Attempts count per move: a saga that moved on starts counting again.
            attempts = attempts + 1 if version == at_version else 1
            pause = min(self.retry_delay * 2 ** min(attempts - 1, 30), self.max_retry_delay)
            due = datetime.now(UTC) + timedelta(seconds=pause)
            if stalled is not None and stalled.deadline is not None:
                due = min(due, max(stalled.deadline, datetime.now(UTC)))
            log.warning("saga %s: attempt %d failed, retrying in %.1f s: %s",
                        saga_id, attempts, pause, exc)  # fmt: skip
            # If even the timer cannot be kept, this raises: the event is delivered again.
            self._set_timer(saga_id, due, attempts, version)
            return None
        if saga.finished:
            if timer is not None:
                self._clear_timer(saga_id)
        else:  # stopped short of its end (MAX_TRANSITIONS): look again soon
            soon = datetime.now(UTC) + timedelta(seconds=self.retry_delay)
            self._set_timer(saga_id, soon, 0, saga.version)
        return saga

    # -- deciding ----------------------------------------------------------------------------

    def advance(self, saga_id: str, *, give_up_at: int | None = None) -> S:
        """Take the saga as far as it goes now and return it. A move that cannot be made now
        raises (``_Stalled``), unless the saga is still at version ``give_up_at``: then that
        move's step counts as failed (its last attempt)."""
        repository = self.sagas.repository
        saga = repository.load(saga_id)
        for _ in range(MAX_TRANSITIONS):
            if saga.finished:
                return saga
            try:
                self._transition(saga, give_up=saga.version == give_up_at)
            except _SagaMoved:
                saga = repository.load(saga_id)  # another runner moved it: look again
            except Exception as exc:
                raise _Stalled(saga.version, saga.deadline, exc) from exc
        return saga

    def _transition(self, saga: S, give_up: bool) -> None:
        """Run and record the saga's next move: a step done or undone, a step failed, or the
        deadline passed. The saga in hand is the stored one afterwards."""
        if saga.compensating:
            name = saga.next_compensation()
            assert name is not None  # the last compensation records the ending
            compensate = self.steps[name].compensate
            undo_key = step_key(self.saga_type, saga.id, name, undo=True)
            with self._audit(saga, f"undo {name}"):
                result = None if compensate is None else compensate(saga, undo_key)
            saga.compensate_step(name, _position(result))
            self._save(saga)
            return
        name = saga.next_step()
        assert name is not None  # the last step records the ending
        action_key = step_key(self.saga_type, saga.id, name)
        if saga.deadline is not None and datetime.now(UTC) >= saga.deadline:
            saga.pass_deadline()
            self._save_without(saga, name, action_key)
            return
        try:
            with self._audit(saga, name):
                result = self.steps[name].action(saga, action_key)
        except Exception as exc:
            if not (is_refusal(exc) or give_up):
                raise
            reason = (
                str(exc)
                if is_refusal(exc)
                else f"gave up after {self.max_attempts} attempts: {type(exc).__name__}: {exc}"
            )
            log.info("saga %s: step %s failed: %s", saga.id, name, reason)
            saga.fail_step(name, reason)
            self._save_without(saga, name, action_key)
            return
        saga.complete_step(name, _position(result))
        self._save(saga)

    def _save(self, saga: S, fence: str | None = None) -> None:
        """Append the saga's new events (the first one with the id of ``fence``'s first event,
        when given); ``_SagaMoved`` when another runner recorded a move first."""
        audit = None if fence is None else Audit(command_id=str(uuid.uuid4()))
        try:
            saved = self.sagas.repository.save(saga, audit=audit, idempotency_key=fence)
        except ConcurrencyError:
            raise _SagaMoved from None
        if saved.replayed:
            raise _SagaMoved

    def _save_without(self, saga: S, step: str, action_key: str) -> None:
        """Record a move that ends ``step`` without it (it failed, or the deadline passed),
        fencing its command off: the move's first event takes the id of the first event the
        step's command would store, and event ids are unique in the store, so once the move is
        stored a racing run of the command can never be (its append is refused). If the
        command's events were stored first (a racing runner, or a run whose answer was lost),
        the step did happen: it is recorded as completed instead, and compensated if need be."""
        try:
            self._save(saga, fence=action_key)
        except DuplicateEventError:
            run = stored_run(self.sagas.store, action_key)
            if run is None or run[0].aggregate_id == saga.id:
                raise _SagaMoved from None  # another runner recorded this very move
            log.info("saga %s: step %s was done by a racing run", saga.id, step)
            fresh = self.sagas.repository.load(saga.id)
            if fresh.next_step() == step and not fresh.compensating:
                fresh.complete_step(step, run[-1].position)
                self._save(fresh)
            raise _SagaMoved from None

    def _audit(self, saga: S, doing: str) -> AbstractContextManager[Audit]:
        """The audit answers of a step's commands: the saga is the actor (unless one is set),
        its id the correlation id, so an account's history names the transfer behind it."""
        outer = current_audit()
        return audit_context(
            actor=outer.actor or f"saga:{self.saga_type}",
            reason=outer.reason or f"{self.saga_type} {saga.id}: {doing}",
            correlation_id=saga.id,
        )

    # -- the timer loop ----------------------------------------------------------------------

    def run_forever(self) -> None:
        """Fire due timers every ``tick`` seconds until :meth:`stop`."""
        while not self._stopping.is_set():
            try:
                fired = self.fire_due_timers()
            except Exception:  # the loop must outlive any one failure
                log.exception("sagas %s: firing timers failed", self.saga_type)
                fired = 0
            if not fired:
                self._stopping.wait(self.tick)

    def run_until_idle(self, timeout: float = 10.0) -> None:
        """Fire timers until none is due (or ``timeout`` seconds pass): for tests and scripts."""
        deadline = time.monotonic() + timeout
        while self.fire_due_timers() and time.monotonic() < deadline:
            pass

    # -- timers ------------------------------------------------------------------------------

    def _timer(self, saga_id: str) -> Timer | None:
        """The saga's timer (due in ms, attempts, at version), or None."""
        rows = self.timers.query(
            "SELECT due_ms, attempts, at_version FROM cronica_saga_timers WHERE saga_type = ?"
            " AND saga_id = ?",
            [self.saga_type, saga_id],
        )
        return (int(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else None

    def _set_timer(
        self, saga_id: str, due: datetime, attempts: int, at_version: int, keep: bool = False
    ) -> None:
        """Set the saga's timer (``keep``: only if it has none)."""
        conflict = (
            "DO NOTHING"
            if keep
            else (
                "DO UPDATE SET due_ms = excluded.due_ms, attempts = excluded.attempts,"
                " at_version = excluded.at_version"
            )
        )
        with self.timers.transaction() as tx:
            tx.execute(
                "INSERT INTO cronica_saga_timers (saga_type, saga_id, due_ms, attempts,"
                f" at_version) VALUES (?, ?, ?, ?, ?) ON CONFLICT (saga_type, saga_id) {conflict}",
                [self.saga_type, saga_id, _ms(due), attempts, at_version],
            )

    def _clear_timer(self, saga_id: str) -> None:
        with self.timers.transaction() as tx:
            tx.execute(
                "DELETE FROM cronica_saga_timers WHERE saga_type = ? AND saga_id = ?",
                [self.saga_type, saga_id],
            )

    def pending_timers(self) -> list[tuple[str, datetime, int]]:
        """(saga id, due, attempts) of this runner's timers, soonest first."""
        rows = self.timers.query(
            "SELECT saga_id, due_ms, attempts FROM cronica_saga_timers WHERE saga_type = ?"
            " ORDER BY due_ms",
            [self.saga_type],
        )
        return [
            (str(saga_id), datetime.fromtimestamp(int(due) / 1000, UTC), int(attempts))
            for saga_id, due, attempts in rows
        ]


def _position(result: object) -> int | None:
    """The position a step's result reports (a ``CommandResult``'s), if any."""
    position = getattr(result, "position", None)
    return position if isinstance(position, int) else None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
