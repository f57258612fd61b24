"""The seed's bank account (1.4.2): identity, invariants, commands, events.

The owner's name is personal data (``Annotated[str, PERSONAL]``): the repository stores it
encrypted with the account's key, and forgetting the account's holder
(:func:`cronica.privacy.forget`) leaves ``[erased]`` in its place.

Invariants: every amount is positive; the balance never goes negative; a closed account accepts
nothing, and only an empty account can be closed. The event types are the wire contract's
(``AccountCreated {owner}``, ``DepositMade {amount}``, ...), amounts as decimal strings.

Run it: ``python -m cronica.examples.bank [--store URL]``.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from cronica.aggregates import Aggregate
from cronica.errors import InvariantError
from cronica.event_types import ERASED_PLACEHOLDER, PERSONAL, DomainEvent, EventRegistry
from cronica.examples._money import InvalidAmountError, amount
from cronica.privacy.erasure import PersonalDataErased

__all__ = [
    "AccountClosed",
    "AccountClosedError",
    "AccountCreated",
    "BankAccount",
    "DepositMade",
    "InsufficientFundsError",
    "InvalidAmountError",
    "PersonalDataErased",
    "TransferReceived",
    "TransferRefunded",
    "TransferSent",
    "WithdrawalMade",
    "bank_events",
]

bank_events = EventRegistry()


@bank_events.register
class AccountCreated(DomainEvent):
    """An account was opened for ``owner``: personal data, encrypted with the account's key
    (the account id is its data subject)."""

    owner: Annotated[str, PERSONAL]


@bank_events.register
class DepositMade(DomainEvent):
    amount: Decimal


@bank_events.register
class WithdrawalMade(DomainEvent):
    amount: Decimal


@bank_events.register
class TransferSent(DomainEvent):
    transfer_id: str
    to: str
    amount: Decimal


@bank_events.register
class TransferReceived(DomainEvent):
    transfer_id: str
    from_: str = Field(alias="from")
    amount: Decimal


@bank_events.register
class TransferRefunded(DomainEvent):
    """A transfer sent from this account came back: its target could not receive it (the
    compensation of ``TransferSent``)."""

    transfer_id: str
    amount: Decimal


@bank_events.register
class AccountClosed(DomainEvent):
    pass


bank_events.register(PersonalDataErased)


class InsufficientFundsError(InvariantError):
    """A withdrawal or transfer larger than the balance."""


class AccountClosedError(InvariantError):
    """A command on a closed account."""


class BankAccount(Aggregate):
    """A bank account; its stream's aggregate type is ``BankAccount``."""

    snapshot_every = 100

    owner: str = ""
    balance: Decimal = Decimal("0.00")
    closed: bool = False

    # -- commands ----------------------------------------------------------------------------

    def open(self, owner: str) -> None:
        if self.version:
            raise InvariantError(f"account {self.id} already exists")
        if not isinstance(owner, str) or not owner.strip():
            raise InvariantError("an account needs an owner")
        self.record(AccountCreated(owner=owner))

    def deposit(self, value: Decimal | int | str) -> None:
        money = amount(value)
        self._check_open()
        self.record(DepositMade(amount=money))

    def withdraw(self, value: Decimal | int | str) -> None:
        money = amount(value)
        self._check_open()
        self._check_covers(money)
        self.record(WithdrawalMade(amount=money))

    def send_transfer(self, transfer_id: str, to: str, value: Decimal | int | str) -> None:
        money = amount(value)
        self._check_open()
        if to == self.id:
            raise InvariantError("a transfer needs two different accounts")
        self._check_covers(money)
        self.record(TransferSent(transfer_id=transfer_id, to=to, amount=money))

    def receive_transfer(self, transfer_id: str, sender: str, value: Decimal | int | str) -> None:
        money = amount(value)
        self._check_open()
        self.record(TransferReceived(transfer_id=transfer_id, from_=sender, amount=money))

    def refund_transfer(self, transfer_id: str, value: Decimal | int | str) -> None:
        """Take back a transfer this account sent. Accepted even when the account has been
        closed meanwhile: a compensation undoes what happened and cannot be refused, or the
        money would be lost between the two accounts."""
        money = amount(value)
        self.record(TransferRefunded(transfer_id=transfer_id, amount=money))

    def close(self) -> None:
        self._check_open()
        if self.balance != 0:
            raise InvariantError(
                f"account {self.id} holds {self.balance}: only an empty account can be closed"
            )
        self.record(AccountClosed())

    def _check_open(self) -> None:
        if self.closed:
            raise AccountClosedError(f"account {self.id} is closed")

    def _check_covers(self, money: Decimal) -> None:
        if money > self.balance:
            raise InsufficientFundsError(
                f"account {self.id} holds {self.balance}, less than {money}"
            )

    # -- state -------------------------------------------------------------------------------

    def apply(self, event: object) -> None:
        match event:
            case AccountCreated(owner=owner):
                self.owner = owner
            case (
                DepositMade(amount=money)
                | TransferReceived(amount=money)
                | TransferRefunded(amount=money)
            ):
                self.balance += money
            case WithdrawalMade(amount=money) | TransferSent(amount=money):
                self.balance -= money
            case AccountClosed():
                self.closed = True
            case PersonalDataErased():
                self.owner = ERASED_PLACEHOLDER  # also if it was stored before it was sealed


def main(argv: list[str] | None = None) -> None:
    """The seed's story: open, deposit 1000, withdraw 500; then the balance at each version."""
    import cronica
    from cronica.repository import Repository

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--store", default="memory://", help="event store URL")
    args = parser.parse_args(argv)
    with cronica.connect(args.store) as store:
        accounts = Repository(store, BankAccount, bank_events)
        account_id = "acc-12345"
        if accounts.store.read_stream(account_id, limit=1):
            account_id = f"acc-{len(store.list_streams(limit=1000)) + 12345}"
        with cronica.audit_context(actor="teller-1", reason="seed story"):
            accounts.create(account_id, lambda a: a.open("Juan Pérez"))
            accounts.execute(account_id, lambda a: a.deposit("1000.00"))
            result = accounts.execute(account_id, lambda a: a.withdraw("500.00"))
        print(f"{account_id}: balance {result.aggregate.balance} at version {result.to_version}")
        for version in range(1, result.to_version + 1):
            then = accounts.load(account_id, version=version)
            print(f"  as of version {version}: balance {then.balance}")
        try:
            accounts.execute(account_id, lambda a: a.withdraw("600.00"))
        except InsufficientFundsError as exc:
            print(f"refused, nothing recorded: {exc}")


if __name__ == "__main__":
    main()
