"""A saga's memory: an aggregate whose events say which steps it took and undid.

The saga's stream (aggregate type: the saga class's) holds what the process did, in order:

- ``SagaStarted {data, deadline}``: the input and, when the saga has a timeout, the moment it
  gives up;
- ``SagaStepCompleted {step, position}`` for each step done (``position``: the last event the
  step's command wrote);
- ``SagaStepFailed {step, reason}`` when a step is refused, or ``SagaDeadlinePassed`` when the
  deadline came first: from there on the saga compensates;
- ``SagaStepCompensated {step, position}`` for each completed step undone, newest first;
- one ending: ``SagaCompleted``, ``SagaFailed {reason}`` (it failed before doing anything, so
  there was nothing to undo) or ``SagaCompensated``.

Replaying these events rebuilds the saga after a crash, so a restarted runner carries on where
the last one stopped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from cronica.aggregates import Aggregate
from cronica.errors import InvariantError
from cronica.event_types import DomainEvent, EventRegistry

__all__ = [
    "Saga",
    "SagaCompensated",
    "SagaCompleted",
    "SagaDeadlinePassed",
    "SagaFailed",
    "SagaStarted",
    "SagaStatus",
    "SagaStepCompensated",
    "SagaStepCompleted",
    "SagaStepFailed",
    "saga_events",
]

SagaStatus = Literal["pending", "completed", "failed", "compensated"]

saga_events = EventRegistry()


@saga_events.register
class SagaStarted(DomainEvent):
    data: dict[str, Any]
    deadline: datetime | None = None


@saga_events.register
class SagaStepCompleted(DomainEvent):
    step: str
    position: int | None = None


@saga_events.register
class SagaStepFailed(DomainEvent):
    step: str
    reason: str


@saga_events.register
class SagaDeadlinePassed(DomainEvent):
    deadline: datetime


@saga_events.register
class SagaStepCompensated(DomainEvent):
    step: str
    position: int | None = None


@saga_events.register
class SagaCompleted(DomainEvent):
    pass


@saga_events.register
class SagaFailed(DomainEvent):
    reason: str


@saga_events.register
class SagaCompensated(DomainEvent):
    pass


class Saga(Aggregate):
    """The state of one run of a long-running process.

    Subclass it per process, naming the steps in order (``steps``) and, if the process must
    end within a time, its ``timeout`` in seconds. The runner
    (:class:`~cronica.sagas.runner.SagaRunner`) decides and records; the subclass may add
    properties that read ``data`` (the saga's input).
    """

    steps: ClassVar[tuple[str, ...]] = ()
    timeout: ClassVar[float | None] = None

    status: SagaStatus
    data: dict[str, Any]
    done: list[str]
    undone: list[str]
    compensating: bool
    reason: str | None
    deadline: datetime | None

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status = "pending"
        self.data = {}
        self.done = []
        self.undone = []
        self.compensating = False
        self.reason = None
        self.deadline = None

    # -- what comes next ---------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.status != "pending"

    def next_step(self) -> str | None:
        """The first step not done yet (None: all done), while not compensating."""
        return next((name for name in self.steps if name not in self.done), None)

    def next_compensation(self) -> str | None:
        """The newest completed step not undone yet (None: all undone)."""
        return next((name for name in reversed(self.done) if name not in self.undone), None)

    # -- commands (the runner's) -------------------------------------------------------------

    def begin(self, data: dict[str, Any], deadline: datetime | None) -> None:
        if self.version:
            raise InvariantError(f"saga {self.id} has already started")
        self.record(SagaStarted(data=data, deadline=deadline))

    def complete_step(self, step: str, position: int | None) -> None:
        self._check_step(step, self.next_step())
        self.record(SagaStepCompleted(step=step, position=position))
        if self.next_step() is None:
            self.record(SagaCompleted())

    def fail_step(self, step: str, reason: str) -> None:
        self._check_step(step, self.next_step())
        self.record(SagaStepFailed(step=step, reason=reason))
        self._end_if_nothing_to_undo()

    def pass_deadline(self) -> None:
        if self.finished or self.compensating or self.deadline is None:
            raise InvariantError(f"saga {self.id} has no deadline to pass")
        self.record(SagaDeadlinePassed(deadline=self.deadline))
        self._end_if_nothing_to_undo()

    def compensate_step(self, step: str, position: int | None) -> None:
        if not self.compensating:
            raise InvariantError(f"saga {self.id} is not compensating")
        self._check_step(step, self.next_compensation())
        self.record(SagaStepCompensated(step=step, position=position))
        if self.next_compensation() is None:
            self.record(SagaCompensated())

    def _check_step(self, step: str, expected: str | None) -> None:
        if self.finished or step != expected:
            raise InvariantError(
                f"saga {self.id} ({self.status}) expects step {expected!r}, not {step!r}"
            )

    def _end_if_nothing_to_undo(self) -> None:
        if not self.done:
            self.record(SagaFailed(reason=self.reason or "failed"))

    # -- state -------------------------------------------------------------------------------

    def apply(self, event: object) -> None:
        match event:
            case SagaStarted(data=data, deadline=deadline):
                self.data = dict(data)
                self.deadline = deadline
            case SagaStepCompleted(step=step):
                self.done.append(step)
            case SagaStepFailed(step=step, reason=reason):
                self.compensating = True
                self.reason = f"{step}: {reason}"
            case SagaDeadlinePassed(deadline=deadline):
                self.compensating = True
                self.reason = f"the deadline passed ({deadline.isoformat()})"
            case SagaStepCompensated(step=step):
                self.undone.append(step)
            case SagaCompleted():
                self.status = "completed"
            case SagaFailed():
                self.status = "failed"
            case SagaCompensated():
                self.status = "compensated"
