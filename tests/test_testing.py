"""The given / when / then helpers catch what they claim to catch."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cronica import InvariantError
from cronica.examples.bank import (
    AccountCreated,
    BankAccount,
    DepositMade,
    InsufficientFundsError,
    WithdrawalMade,
)
from cronica.testing import AggregateScenario

scenario = AggregateScenario(BankAccount, "acc-1")
OPENED = AccountCreated(owner="Ana")


def test_given_replays_history_with_versions() -> None:
    account = scenario.given(OPENED, DepositMade(amount=Decimal("5"))).when(lambda a: None).then()
    assert (account.id, account.version, account.balance) == ("acc-1", 2, Decimal("5"))


def test_then_passes_on_the_exact_events_and_fails_on_any_difference() -> None:
    when = scenario.given(OPENED).when(lambda a: a.deposit("10.00"))
    when.then(DepositMade(amount=Decimal("10.00")))
    with pytest.raises(AssertionError, match="expected events"):
        when.then(DepositMade(amount=Decimal("11.00")))
    with pytest.raises(AssertionError, match="expected events"):
        when.then()
    with pytest.raises(AssertionError, match="expected events"):
        when.then(DepositMade(amount=Decimal("10.00")), DepositMade(amount=Decimal("10.00")))


def test_then_fails_when_the_command_raised() -> None:
    when = scenario.given(OPENED).when(lambda a: a.withdraw("1.00"))
    with pytest.raises(AssertionError, match="raised"):
        when.then(WithdrawalMade(amount=Decimal("1.00")))


def test_then_raises_checks_type_message_and_that_nothing_was_recorded() -> None:
    refused = scenario.given(OPENED).when(lambda a: a.withdraw("1.00"))
    refused.then_raises(InsufficientFundsError, match="less than 1.00")
    refused.then_raises(InvariantError)
    with pytest.raises(AssertionError, match="does not match"):
        refused.then_raises(InsufficientFundsError, match="closed")
    with pytest.raises(AssertionError, match="expected KeyError"):
        refused.then_raises(KeyError)
    accepted = scenario.given(OPENED).when(lambda a: a.deposit("1.00"))
    with pytest.raises(AssertionError, match="recorded"):
        accepted.then_raises(InvariantError)


def test_then_raises_fails_when_events_were_recorded_before_the_refusal() -> None:
    def half_done(account: BankAccount) -> None:
        account.deposit("1.00")
        account.withdraw("50.00")

    with pytest.raises(AssertionError, match="after recording"):
        scenario.given(OPENED).when(half_done).then_raises(InsufficientFundsError)


def test_given_nothing_starts_a_new_aggregate() -> None:
    scenario.given_nothing().when(lambda a: a.open("Bea")).then(AccountCreated(owner="Bea"))
