"""Bank transfers as a saga: debit the source, credit the target, refund when the target cannot
receive (seed 1.5.2 applied to the bank of 1.4.2).

- step ``debit``: the source records ``TransferSent {transferId, to, amount}`` (refused when
  the source is unknown, closed or short of money: the transfer ``failed``, nothing moved);
- step ``credit``: the target records ``TransferReceived {transferId, from, amount}`` (refused
  when the target is unknown or closed);
- compensation of ``debit``: the source records ``TransferRefunded {transferId, amount}``, and
  the transfer is ``compensated``.

Each command carries the saga's idempotency key, so a worker that crashes between a command and
the saga's record of it does not move the money twice when it comes back. The money in all
accounts together never changes because of transfers: a transfer either moved it from one
account to the other or gave it back.

>>> import cronica
>>> from cronica.readmodels import read_models_for
>>> from cronica.repository import Repository
>>> from cronica.examples.bank import BankAccount, bank_events
>>> from cronica.sagas import SagaRunner, Sagas
>>> store = cronica.connect("memory://")
>>> accounts = Repository(store, BankAccount, bank_events)
>>> _ = accounts.create("acc-1", lambda a: (a.open("Ana"), a.deposit("100.00")))
>>> _ = accounts.create("acc-2", lambda a: a.open("Juan"))
>>> transfers = Sagas(store, Transfer)
>>> runner = SagaRunner(transfers, transfer_steps(accounts), timers=read_models_for(store))
>>> _ = transfers.begin("tr-1", {"from": "acc-1", "to": "acc-2", "amount": "30.00"})
>>> runner.drive("tr-1").status
'completed'
>>> accounts.load("acc-1").balance, accounts.load("acc-2").balance
(Decimal('70.00'), Decimal('30.00'))
>>> _ = transfers.begin("tr-2", {"from": "acc-1", "to": "acc-404", "amount": "30.00"})
>>> runner.drive("tr-2").status, accounts.load("acc-1").balance
('compensated', Decimal('70.00'))
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from cronica.examples.bank import BankAccount
from cronica.repository import CommandResult, Repository
from cronica.sagas import Saga, Step

__all__ = ["COMMAND_RETRIES", "Transfer", "transfer_steps"]

COMMAND_RETRIES = 20
"""How often a step's command reloads and retries when the account changed under it."""


class Transfer(Saga):
    """One transfer; its stream id is the transfer id, its input ``from``, ``to``, ``amount``."""

    steps = ("debit", "credit")

    @property
    def source(self) -> str:
        return str(self.data["from"])

    @property
    def target(self) -> str:
        return str(self.data["to"])

    @property
    def amount(self) -> Decimal:
        return Decimal(str(self.data["amount"]))


def transfer_steps(accounts: Repository[BankAccount]) -> list[Step[Transfer]]:
    """The transfer's steps, running their commands through ``accounts``."""

    def on_account(
        account_id: str, command: Callable[[BankAccount], None], key: str
    ) -> CommandResult[BankAccount]:
        return accounts.execute(account_id, command, idempotency_key=key, retries=COMMAND_RETRIES)

    def debit(t: Transfer, key: str) -> CommandResult[BankAccount]:
        return on_account(t.source, lambda a: a.send_transfer(t.id, t.target, t.amount), key)

    def refund(t: Transfer, key: str) -> CommandResult[BankAccount]:
        return on_account(t.source, lambda a: a.refund_transfer(t.id, t.amount), key)

    def credit(t: Transfer, key: str) -> CommandResult[BankAccount]:
        return on_account(t.target, lambda a: a.receive_transfer(t.id, t.source, t.amount), key)

    return [Step("debit", debit, compensate=refund), Step("credit", credit)]
