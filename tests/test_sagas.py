"""The saga engine on every backend: steps in order, compensation newest first, refusals and
failures, persisted deadlines and retries, crash recovery without repeating a step, and runners
racing on one saga."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cronica
from cronica import ConcurrencyError, EventStore, InvariantError, StoreUnavailableError
from cronica.bus.log_consumer import LogConsumer
from cronica.event_types import DomainEvent, EventRegistry
from cronica.readmodels import read_models_for
from cronica.readmodels.base import ReadModelDatabase
from cronica.repository import Repository
from cronica.sagas import Saga, SagaRunner, Sagas, Step, StepFailedError

# -- a tiny domain: counters the steps bump and un-bump ----------------------------------------

counter_events = EventRegistry()


@counter_events.register
class Bumped(DomainEvent):
    by: str


@counter_events.register
class Unbumped(DomainEvent):
    by: str


class Counter(cronica.Aggregate):
    value: int = 0

    def bump(self, by: str) -> None:
        self.record(Bumped(by=by))

    def unbump(self, by: str) -> None:
        if self.value <= 0:
            raise InvariantError("nothing to undo")
        self.record(Unbumped(by=by))

    def apply(self, event: object) -> None:
        match event:
            case Bumped():
                self.value += 1
            case Unbumped():
                self.value -= 1


class Trip(Saga):
    steps = ("flight", "hotel", "car")


class Crash(BaseException):
    """A process dying right there (not an Exception: nothing catches it on the way out)."""


class World:
    """Counters per step, and switches that make a step refuse, fail or crash."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.counters = Repository(store, Counter, counter_events)
        self.refuse: set[str] = set()
        self.down: dict[str, int] = {}  # step -> how many more calls fail as unavailable
        self.crash_after: set[str] = set()  # step names (or "name/undo") that crash once
        self.calls: list[str] = []

    def counter(self, saga: Saga, name: str) -> str:
        return f"{saga.id}-{name}"

    def value(self, saga_id: str, name: str) -> int:
        try:
            return self.counters.load(f"{saga_id}-{name}").value
        except cronica.StreamNotFoundError:
            return 0

    def steps(self) -> list[Step[Trip]]:
        def action(name: str) -> Callable[[Trip, str], object]:
            def run(saga: Trip, key: str) -> object:
                self.calls.append(name)
                if self.down.get(name, 0) > 0:
                    self.down[name] -= 1
                    raise StoreUnavailableError(f"{name} service down")
                if name in self.refuse:
                    raise StepFailedError(f"no {name}")
                result = (
                    self.counters.execute(
                        self.counter(saga, name), lambda c: c.bump(name), idempotency_key=key
                    )
                    if self.store.read_stream(self.counter(saga, name), limit=1)
                    else (
                        self.counters.create(
                            self.counter(saga, name), lambda c: c.bump(name), idempotency_key=key
                        )
                    )
                )
                if name in self.crash_after:
                    self.crash_after.discard(name)
                    raise Crash(name)
                return result

            return run

        def undo(name: str) -> Callable[[Trip, str], object]:
            def run(saga: Trip, key: str) -> object:
                self.calls.append(f"{name}/undo")
                result = self.counters.execute(
                    self.counter(saga, name), lambda c: c.unbump(name), idempotency_key=key
                )
                if f"{name}/undo" in self.crash_after:
                    self.crash_after.discard(f"{name}/undo")
                    raise Crash(name)
                return result

            return run

        return [
            Step("flight", action("flight"), compensate=undo("flight")),
            Step("hotel", action("hotel"), compensate=undo("hotel")),
            Step("car", action("car")),
        ]


@pytest.fixture
def timers(store: EventStore) -> Iterator[ReadModelDatabase]:
    with read_models_for(store) as db:
        yield db


def runner_for(
    world: World, timers: ReadModelDatabase, saga: type[Trip] = Trip, **options: Any
) -> SagaRunner[Trip]:
    return SagaRunner(Sagas(world.store, saga), world.steps(), timers=timers, **options)


def types(store: EventStore, stream: str) -> list[str]:
    return [event.event_type for event in store.read_stream(stream)]


def test_steps_run_in_order_and_the_saga_completes(
    store: EventStore, timers: ReadModelDatabase
) -> None:
    world = World(store)
    runner = runner_for(world, timers)
    runner.sagas.begin("t-1", {"who": "Ana"})
    saga = runner.drive("t-1")
    assert saga is not None and saga.status == "completed"
    assert world.calls == ["flight", "hotel", "car"]
    assert types(store, "t-1") == [
        "SagaStarted", "SagaStepCompleted", "SagaStepCompleted", "SagaStepCompleted",
        "SagaCompleted",
    ]  # fmt: skip
    recorded = store.read_stream("t-1")[1]
    car_event = store.read_stream("t-1-flight")[0]
    assert recorded.data == {"step": "flight", "position": car_event.position}
    assert runner.pending_timers() == []


def test_a_refused_step_undoes_the_completed_ones_newest_first(
    store: EventStore, timers: ReadModelDatabase
) -> None:
    world = World(store)
    world.refuse.add("car")
    runner = runner_for(world, timers)
    runner.sagas.begin("t-1", {})
    saga = runner.drive("t-1")
    assert saga is not None
    assert (saga.status, saga.reason) == ("compensated", "car: no car")
    assert world.calls == ["flight", "hotel", "car", "hotel/undo", "flight/undo"]
    assert (world.value("t-1", "flight"), world.value("t-1", "hotel")) == (0, 0)
    assert types(store, "t-1")[3:] == [
        "SagaStepFailed", "SagaStepCompensated", "SagaStepCompensated", "SagaCompensated",
    ]  # fmt: skip
    # The undoing happened in the log in reverse order of the doing.
    hotel_undone = store.read_stream("t-1-hotel")[-1].position
    flight_undone = store.read_stream("t-1-flight")[-1].position
    assert hotel_undone < flight_undone


def test_a_refused_first_step_fails_the_saga_with_nothing_to_undo(
    store: EventStore, timers: ReadModelDatabase
) -> None:
    world = World(store)
    world.refuse.add("flight")
    runner = runner_for(world, timers)
    runner.sagas.begin("t-1", {})
    saga = runner.drive("t-1")
    assert saga is not None and (saga.status, saga.reason) == ("failed", "flight: no flight")
    assert types(store, "t-1") == ["SagaStarted", "SagaStepFailed", "SagaFailed"]
    assert world.calls == ["flight"]


@pytest.mark.parametrize("crash_at", ["flight", "hotel", "hotel/undo"])
def test_a_crash_after_a_steps_command_does_not_repeat_it(
    store: EventStore, timers: ReadModelDatabase, crash_at: str
) -> None:
    """The process dies after a step's command was stored but before the saga recorded the
    step; a new runner (another process) carries on: the command is not run again."""
    world = World(store)
    world.crash_after.add(crash_at)
    if crash_at.endswith("/undo"):
        world.refuse.add("car")
    runner_for(world, timers).sagas.begin("t-1", {})
    with pytest.raises(Crash):
        runner_for(world, timers).drive("t-1")
    saga = runner_for(world, timers).drive("t-1")  # the restarted process
    assert saga is not None
    if crash_at.endswith("/undo"):
        assert saga.status == "compensated"
        assert types(store, "t-1-hotel") == ["Bumped", "Unbumped"]
        assert types(store, "t-1-flight") == ["Bumped", "Unbumped"]
    else:
        assert saga.status == "completed"
        for name in ("flight", "hotel", "car"):
            assert types(store, f"t-1-{name}") == ["Bumped"], name
    # The step's function ran twice, its command once.
    assert world.calls.count(crash_at) == 2


def test_a_step_that_cannot_be_tried_is_retried_by_its_persisted_timer(
    store: EventStore, timers: ReadModelDatabase
) -> None:
    world = World(store)
    world.down["hotel"] = 2
    runner = runner_for(world, timers, retry_delay=0.05)
    runner.sagas.begin("t-1", {})
    assert runner.drive("t-1") is None  # the hotel service is down
    [(saga_id, _due, attempts)] = runner.pending_timers()
    assert (saga_id, attempts) == ("t-1", 1)
    assert runner.fire_due_timers() == 0  # not due yet
    deadline = time.monotonic() + 10
    while store.read_stream("t-1", backward=True, limit=1)[0].event_type != "SagaCompleted":
        assert time.monotonic() < deadline
        runner.fire_due_timers()
        time.sleep(0.02)
    assert world.calls == ["flight", "hotel", "hotel", "hotel", "car"]
    assert runner.pending_timers() == []


def test_a_step_that_keeps_failing_is_given_up_after_max_attempts_and_compensated(
    store: EventStore, timers: ReadModelDatabase
) -> None:
    world = World(store)
    world.down["hotel"] = 100
    runner = runner_for(world, timers, retry_delay=0.01, max_attempts=3)
    runner.sagas.begin("t-1", {})
    runner.drive("t-1")
    deadline = time.monotonic() + 10
    while runner.pending_timers():
        assert time.monotonic() < deadline
        runner.fire_due_timers()
        time.sleep(0.02)
    saga = runner.sagas.get("t-1")
    assert saga.status == "compensated"
    assert saga.reason is not None and "gave up after 3 attempts" in saga.reason
    assert world.calls == ["flight", "hotel", "hotel", "hotel", "flight/undo"]


class HurriedTrip(Trip):
    timeout = 0.3


def test_a_deadline_that_passes_compensates_what_was_done(
    store: EventStore, timers: ReadModelDatabase
) -> None:
    world = World(store)
    world.down["hotel"] = 1000  # the hotel service stays down
    runner = runner_for(world, timers, HurriedTrip, retry_delay=0.05, max_retry_delay=0.05)
    started = runner.sagas.begin("t-1", {})
    deadline = started.aggregate.deadline
    assert deadline is not None
    consumer = LogConsumer(store, runner.handle, group=runner.group, checkpoints=timers)
    consumer.run_once()  # delivers SagaStarted: the deadline's timer is set
    give_up = time.monotonic() + 10
    while not runner.sagas.get("t-1").finished:
        assert time.monotonic() < give_up
        runner.fire_due_timers()
        time.sleep(0.02)
    saga = runner.sagas.get("t-1")
    assert saga.status == "compensated"
    assert saga.reason is not None and saga.reason.startswith("the deadline passed")
    assert "SagaDeadlinePassed" in types(store, "t-1")
    assert world.value("t-1", "flight") == 0
    passed = next(e for e in store.read_stream("t-1") if e.event_type == "SagaDeadlinePassed")
    assert passed.timestamp >= deadline


def test_timers_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trips.db'}"
    with cronica.connect(url) as store, read_models_for(store) as timers:
        world = World(store)
        world.down["flight"] = 1
        runner = runner_for(world, timers, retry_delay=0.2)
        runner.sagas.begin("t-1", {})
        assert runner.drive("t-1") is None
    time.sleep(0.25)
    with cronica.connect(url) as store, read_models_for(store) as timers:
        runner = runner_for(World(store), timers)
        assert [saga_id for saga_id, _, _ in runner.pending_timers()] == ["t-1"]
        assert runner.fire_due_timers() == 1
        assert runner.sagas.get("t-1").status == "completed"


def test_the_runner_follows_the_log_and_its_timers_in_the_background(
    store: EventStore, timers: ReadModelDatabase
) -> None:
    world = World(store)
    runner = runner_for(world, timers, tick=0.05)
    consumer = LogConsumer(store, runner.handle, group=runner.group, checkpoints=timers)
    world.down["car"] = 1
    with runner.start(), consumer.start():
        for n in range(5):
            runner.sagas.begin(f"t-{n}", {"n": n})
        deadline = time.monotonic() + 20
        while not all(runner.sagas.get(f"t-{n}").finished for n in range(5)):
            assert time.monotonic() < deadline, "the sagas did not finish"
            time.sleep(0.02)
    assert {runner.sagas.get(f"t-{n}").status for n in range(5)} == {"completed"}


def test_runners_racing_on_the_same_sagas_run_each_command_once(
    store: EventStore, timers: ReadModelDatabase
) -> None:
    world = World(store)
    world.refuse.add("car")
    sagas = [f"t-{n}" for n in range(8)]
    for saga_id in sagas:
        runner_for(world, timers).sagas.begin(saga_id, {})
    errors: list[BaseException] = []

    def drive_all() -> None:
        runner = runner_for(world, timers)
        try:
            for saga_id in sagas:
                runner.drive(saga_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drive_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for saga_id in sagas:
        assert runner_for(world, timers).sagas.get(saga_id).status == "compensated"
        assert types(store, f"{saga_id}-flight") == ["Bumped", "Unbumped"]
        assert types(store, f"{saga_id}-hotel") == ["Bumped", "Unbumped"]
        assert types(store, saga_id).count("SagaStepCompensated") == 2


def test_beginning_again_with_the_same_input_changes_nothing(store: EventStore) -> None:
    sagas = Sagas(store, Trip)
    first = sagas.begin("t-1", {"amount": "5.00"})
    again = sagas.begin("t-1", {"amount": "5.00"})
    assert (again.replayed, again.position) == (True, first.position)
    with pytest.raises(ConcurrencyError):
        sagas.begin("t-1", {"amount": "6.00"})
    assert len(store.read_stream("t-1")) == 1


def test_a_runner_needs_a_function_for_every_step(store: EventStore) -> None:
    with read_models_for(store) as timers, pytest.raises(cronica.InvalidInputError):
        SagaRunner(Sagas(store, Trip), World(store).steps()[:2], timers=timers)

    class Empty(Saga):
        pass

    with pytest.raises(cronica.InvalidInputError):
        Sagas(store, Empty)


def test_a_failure_recorded_first_fences_off_a_racing_run_of_the_step(
    store: EventStore, timers: ReadModelDatabase
) -> None:
    """Runner B is about to store the hotel booking when runner A gives the hotel up and
    compensates: B's booking must never be stored, or it would stay booked for good."""
    world = World(store)
    runner_for(world, timers).sagas.begin("t-1", {})
    a_world = World(store)
    a_world.down["hotel"] = 1
    runner_a = runner_for(a_world, timers, max_attempts=1)
    b_steps = world.steps()
    real_hotel = b_steps[1].action

    def hotel_after_a_gave_up(saga: Trip, key: str) -> object:
        assert runner_a.advance("t-1", give_up_at=saga.version).status == "compensated"
        return real_hotel(saga, key)

    b_steps[1] = Step("hotel", hotel_after_a_gave_up, compensate=b_steps[1].compensate)
    runner_b = SagaRunner(Sagas(store, Trip), b_steps, timers=timers)
    saga = runner_b.advance("t-1")
    assert saga.status == "compensated"
    assert saga.reason is not None and "gave up" in saga.reason
    assert store.read_stream("t-1-hotel") == []  # the racing booking was refused
    assert types(store, "t-1-flight") == ["Bumped", "Unbumped"]


def test_a_step_whose_answer_was_lost_is_recorded_as_done_not_failed(
    store: EventStore, timers: ReadModelDatabase
) -> None:
    """The hotel's command is stored, then the connection drops and the runner gives the
    step up: recording the failure finds the booking, so the step counts as done."""
    world = World(store)
    steps = world.steps()
    real_hotel = steps[1].action

    def stored_then_unavailable(saga: Trip, key: str) -> object:
        real_hotel(saga, key)
        raise StoreUnavailableError("connection lost after the commit")

    steps[1] = Step("hotel", stored_then_unavailable, compensate=steps[1].compensate)
    runner = SagaRunner(Sagas(store, Trip), steps, timers=timers, max_attempts=2, retry_delay=0.01)
    runner.sagas.begin("t-1", {})
    assert runner.drive("t-1") is None  # flight done; the hotel's answer lost: retry
    time.sleep(0.02)
    assert runner.fire_due_timers() == 1  # the last attempt: given up, yet found done
    saga = runner.sagas.get("t-1")
    assert (saga.status, saga.done) == ("completed", ["flight", "hotel", "car"])
    assert types(store, "t-1-hotel") == ["Bumped"]


def test_attempts_are_counted_per_step(store: EventStore, timers: ReadModelDatabase) -> None:
    """With max_attempts=3, a flight that fails twice and a hotel that fails twice both get
    their third try: the hotel's count starts when the flight is done."""
    world = World(store)
    world.down.update({"flight": 2, "hotel": 2})
    runner = runner_for(world, timers, max_attempts=3, retry_delay=0.01, max_retry_delay=0.01)
    runner.sagas.begin("t-1", {})
    runner.drive("t-1")
    deadline = time.monotonic() + 10
    while runner.pending_timers():
        assert time.monotonic() < deadline
        time.sleep(0.015)
        runner.fire_due_timers()
    assert runner.sagas.get("t-1").status == "completed"
    assert world.calls == ["flight"] * 3 + ["hotel"] * 3 + ["car"]


def test_a_retry_never_waits_past_the_deadline(
    store: EventStore, timers: ReadModelDatabase
) -> None:
    world = World(store)
    world.down["flight"] = 1000
    runner = runner_for(world, timers, HurriedTrip, retry_delay=60.0, max_retry_delay=60.0)
    started = runner.sagas.begin("t-1", {})
    assert runner.drive("t-1") is None
    [(_, due, _)] = runner.pending_timers()
    assert started.aggregate.deadline is not None
    assert abs((due - started.aggregate.deadline).total_seconds()) < 0.01
