"""Given / when / then for aggregates: test the domain without a store.

>>> from decimal import Decimal
>>> from cronica.examples.bank import (
...     AccountCreated, BankAccount, DepositMade, InsufficientFundsError, WithdrawalMade)
>>> scenario = AggregateScenario(BankAccount)
>>> account = scenario.given(AccountCreated(owner="Ana"), DepositMade(amount=Decimal("100"))) \\
...     .when(lambda account: account.withdraw("30")) \\
...     .then(WithdrawalMade(amount=Decimal("30")))
>>> account.balance
Decimal('70.00')
>>> error = scenario.given(AccountCreated(owner="Ana")) \\
...     .when(lambda account: account.withdraw("30")) \\
...     .then_raises(InsufficientFundsError, match="less than 30")

``given`` builds the aggregate from past events (as loading it would), ``when`` runs a command,
``then`` checks the exact new events, in order, and ``then_raises`` that the command was
refused and recorded nothing. Failures raise ``AssertionError`` with both sides printed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from cronica.aggregates import Aggregate

A = TypeVar("A", bound=Aggregate)


class AggregateScenario(Generic[A]):
    """A reusable scenario for one aggregate class; each ``given`` starts afresh."""

    def __init__(self, aggregate_class: type[A], aggregate_id: str = "test-aggregate") -> None:
        self.aggregate_class = aggregate_class
        self.aggregate_id = aggregate_id

    def given(self, *events: object) -> _Given[A]:
        """The aggregate's history: these events, already stored, in order."""
        aggregate = self.aggregate_class(self.aggregate_id)
        for version, event in enumerate(events, start=1):
            aggregate.replay(event, version)
        return _Given(aggregate)

    def given_nothing(self) -> _Given[A]:
        """A new aggregate, with no history."""
        return self.given()


class _Given(Generic[A]):
    def __init__(self, aggregate: A) -> None:
        self.aggregate = aggregate

    def when(self, command: Callable[[A], Any]) -> _When[A]:
        """Run ``command`` on the aggregate; its outcome is checked by ``then``."""
        error: Exception | None = None
        try:
            command(self.aggregate)
        except Exception as exc:
            error = exc
        return _When(self.aggregate, error)


class _When(Generic[A]):
    def __init__(self, aggregate: A, error: Exception | None) -> None:
        self.aggregate = aggregate
        self.error = error

    def then(self, *expected: object) -> A:
        """The command succeeded and recorded exactly ``expected``; returns the aggregate."""
        if self.error is not None:
            raise AssertionError(
                f"expected events {list(expected)!r}, but the command raised {self.error!r}"
            ) from self.error
        recorded = list(self.aggregate.pending_events)
        if recorded != list(expected):
            raise AssertionError(f"expected events {list(expected)!r}, recorded {recorded!r}")
        return self.aggregate

    def then_nothing(self) -> A:
        """The command succeeded and recorded no event."""
        return self.then()

    def then_raises(self, error: type[Exception], match: str | None = None) -> Exception:
        """The command raised ``error`` (its message matching ``match``) and recorded nothing
        (events recorded before the refusal count as recorded: a command must check first)."""
        if self.error is None:
            raise AssertionError(
                f"expected {error.__name__}, but the command recorded"
                f" {list(self.aggregate.pending_events)!r}"
            )
        if not isinstance(self.error, error):
            raise AssertionError(f"expected {error.__name__}, got {self.error!r}") from self.error
        if match is not None and not re.search(match, str(self.error)):
            raise AssertionError(f"{self.error!r} does not match {match!r}")
        if self.aggregate.pending_events:
            raise AssertionError(
                f"{error.__name__} raised, but after recording"
                f" {list(self.aggregate.pending_events)!r}"
            )
        return self.error
