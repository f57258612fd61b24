"""Sagas (seed 1.5.2): long-running processes that compensate in reverse order when a step fails.

A saga is a process manager with event-sourced state (:class:`Saga`, its events in its own
stream), driven by a :class:`SagaRunner` that reacts to those events and to persisted timers.

>>> import cronica
>>> from cronica.readmodels import read_models_for
>>> class Trip(Saga):
...     steps = ("flight", "hotel")
>>> booked = []
>>> def refuse(saga, key):
...     raise StepFailedError("no room")
>>> steps = [Step("flight", lambda saga, key: booked.append("flight"),
...               compensate=lambda saga, key: booked.remove("flight")),
...          Step("hotel", refuse)]
>>> store = cronica.connect("memory://")
>>> trips = Sagas(store, Trip)
>>> runner = SagaRunner(trips, steps, timers=read_models_for(store))
>>> _ = trips.begin("trip-1", {"traveller": "Ana"})
>>> runner.drive("trip-1").status, booked
('compensated', [])
>>> [e.event_type for e in store.read_stream("trip-1")]  # doctest: +NORMALIZE_WHITESPACE
['SagaStarted', 'SagaStepCompleted', 'SagaStepFailed', 'SagaStepCompensated',
 'SagaCompensated']
"""

from cronica.sagas.runner import (
    DELIVERY_ATTEMPTS,
    SagaRunner,
    Sagas,
    Step,
    StepFailedError,
    is_refusal,
)
from cronica.sagas.state import Saga, SagaStatus, saga_events

__all__ = [
    "DELIVERY_ATTEMPTS",
    "Saga",
    "SagaRunner",
    "SagaStatus",
    "Sagas",
    "Step",
    "StepFailedError",
    "is_refusal",
    "saga_events",
]
