"""The same bank account in the ``eventsourcing`` library (9.5), as its users write it.

An ``Aggregate`` with a ``DepositMade`` event carrying a ``Decimal`` amount (the application's
default JSON transcoder registers ``DecimalAsStr``), an ``Application`` whose command is
``account = app.repository.get(id)``, ``account.deposit("10.00")``, ``app.save(account)``. The
application has no aggregate cache and, for commands, no snapshots: its defaults. It is pointed
at the site, and its SQLite durability checked, exactly as in the event store benchmark
(``storebench.impl_es``): WAL with ``synchronous=FULL`` on SQLite, the server's settings on
PostgreSQL. The deposit checks its amount and the account's state as cronica's ``BankAccount``
does, so both decide the same way.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from storebench.impl_es import _check_sqlite_durability, es_environment
from storebench.sites import Site
from writebench.common import (
    COMMAND_AMOUNT,
    INITIAL_AMOUNT,
    LOAD_AMOUNT,
    OWNER,
    WriteModelSizes,
    amount,
)


class EsBankAccount(Aggregate):
    """A bank account: created with its owner (the ``Created`` event), then deposits."""

    class DepositMade(Aggregate.Event):
        amount: Decimal

        def apply(self, aggregate: Any) -> None:
            aggregate.balance += self.amount

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = Decimal("0.00")
        self.closed = False

    def deposit(self, value: Decimal | int | str) -> None:
        money = amount(value)
        if self.closed:
            raise ValueError(f"account {self.id} is closed")
        self.trigger_event(self.DepositMade, amount=money)


class WriteModelApplication(Application[UUID]):
    """Defaults: no cache; snapshots only when the environment enables them."""


def open_application(site: Site, *, snapshots: bool = False) -> WriteModelApplication:
    env = es_environment(site)
    if snapshots:
        env["IS_SNAPSHOTTING_ENABLED"] = "y"
    app = WriteModelApplication(env=env)
    if site.backend == "sqlite":
        _check_sqlite_durability(app)  # type: ignore[arg-type]
    return app


def create_account(app: WriteModelApplication, events: int, each: Decimal, batch: int) -> UUID:
    """A new account of ``events`` events (``Created`` and deposits), saved every ``batch``."""
    account = EsBankAccount(owner=OWNER)
    pending = 1
    for _ in range(events - 1):
        account.deposit(each)
        pending += 1
        if pending == batch:
            app.save(account)
            pending = 0
    if pending:
        app.save(account)
    account_id: UUID = account.id
    return account_id


class EsCommands:
    """``repository.get``, ``deposit``, ``save`` on the accounts in turn."""

    def __init__(self, site: Site, sizes: WriteModelSizes) -> None:
        self.app = open_application(site)
        self.ids = [
            create_account(self.app, sizes.initial_events, INITIAL_AMOUNT, sizes.initial_events)
            for _ in range(sizes.accounts)
        ]
        self._next = 0

    def command(self) -> None:
        account_id = self.ids[self._next]
        self._next = (self._next + 1) % len(self.ids)
        account: EsBankAccount = self.app.repository.get(account_id)
        account.deposit(COMMAND_AMOUNT)
        self.app.save(account)

    def total_balance(self) -> Decimal:
        return sum(
            (self.app.repository.get(account_id).balance for account_id in self.ids), Decimal(0)
        )

    def close(self) -> None:
        self.app.close()


class EsLoads:
    """For each size N an account of N events with a snapshot at its head (``take_snapshot``).

    Read with ``repository.get`` by two applications on the same tables: one without snapshots
    (its default) and one with snapshotting enabled.
    """

    def __init__(self, site: Site, sizes: WriteModelSizes) -> None:
        self.plain = open_application(site)
        self.snapshotted = open_application(site, snapshots=True)
        self.ids: dict[int, UUID] = {}
        for size in sizes.load_events:
            account_id = create_account(self.plain, size, LOAD_AMOUNT, sizes.append_batch)
            self.snapshotted.take_snapshot(account_id)
            self.ids[size] = account_id

    def loader(self, variant: str, size: int) -> tuple[UUID, WriteModelApplication]:
        return self.ids[size], self.snapshotted if variant == "head" else self.plain

    def close(self) -> None:
        self.plain.close()
        self.snapshotted.close()
