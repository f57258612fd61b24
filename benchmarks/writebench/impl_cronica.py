"""cronica's write model as users write it: ``Repository(store, BankAccount, bank_events)``.

The store is opened with ``cronica.connect(url)`` and its default settings (SQLite: WAL,
``synchronous=FULL``; PostgreSQL: the server's ``synchronous_commit``), as in the event store
benchmark. ``BankAccount`` sets ``snapshot_every = 100``, so a repository of it looks up a
snapshot on each load (in the store's own ``cronica_snapshots`` table) and takes one whenever a
save crosses a multiple of 100 events. The contenders without snapshots pass
``snapshot_every=None``.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import cronica
from cronica import EventStore, NewEvent, Repository
from cronica.examples.bank import AccountCreated, BankAccount, DepositMade, bank_events
from storebench.impl_cronica import store_url
from storebench.sites import Site
from writebench.common import COMMAND_AMOUNT, INITIAL_AMOUNT, LOAD_AMOUNT, OWNER, WriteModelSizes

AGGREGATE_TYPE = BankAccount.aggregate_type


def account_events(count: int, amount: Decimal) -> Iterator[NewEvent]:
    """``AccountCreated`` then ``count - 1`` deposits of ``amount``, each with its own id."""
    yield bank_events.to_new_event(AccountCreated(owner=OWNER))
    for _ in range(count - 1):
        yield bank_events.to_new_event(DepositMade(amount=amount))


def deposits(count: int, amount: Decimal) -> list[NewEvent]:
    return [bank_events.to_new_event(DepositMade(amount=amount)) for _ in range(count)]


def write_stream(
    store: EventStore, aggregate_id: str, events: Iterator[NewEvent], batch: int, version: int = 0
) -> int:
    """Append ``events`` in batches of ``batch`` at the exact expected version; the new version."""
    pending: list[NewEvent] = []
    for event in events:
        pending.append(event)
        if len(pending) == batch:
            version = store.append(aggregate_id, pending, version, AGGREGATE_TYPE).to_version
            pending = []
    if pending:
        version = store.append(aggregate_id, pending, version, AGGREGATE_TYPE).to_version
    return version


def _deposit(account: BankAccount) -> None:
    account.deposit(COMMAND_AMOUNT)


class CronicaCommands:
    """``repo.execute(account_id, lambda a: a.deposit("10.00"))`` on the accounts in turn."""

    def __init__(self, site: Site, sizes: WriteModelSizes, *, snapshots: bool) -> None:
        self.store = cronica.connect(store_url(site))
        self.repo: Repository[BankAccount] = (
            Repository(self.store, BankAccount, bank_events)
            if snapshots
            else Repository(self.store, BankAccount, bank_events, snapshot_every=None)
        )
        self.ids = [f"acc-{n}" for n in range(sizes.accounts)]
        for account_id in self.ids:
            events = account_events(sizes.initial_events, INITIAL_AMOUNT)
            write_stream(self.store, account_id, events, sizes.initial_events)
        self._next = 0

    def command(self) -> None:
        account_id = self.ids[self._next]
        self._next = (self._next + 1) % len(self.ids)
        self.repo.execute(account_id, _deposit)

    def total_balance(self) -> Decimal:
        return sum((self.repo.load(account_id).balance for account_id in self.ids), Decimal(0))

    def close(self) -> None:
        self.store.close()  # and the snapshot store, which the store owns


class CronicaLoads:
    """The aggregates that the load workload reads, and the repositories that read them.

    For each size N: ``load-N``, with a snapshot at its head (version N), read both by a
    repository without snapshots and by one with them; and ``behind-N``, whose snapshot is
    ``snapshot_lag`` events behind its head (the worst case of ``snapshot_every=100``).
    """

    def __init__(self, site: Site, sizes: WriteModelSizes) -> None:
        self.store = cronica.connect(store_url(site))
        self.sizes = sizes
        self.plain: Repository[BankAccount] = Repository(
            self.store, BankAccount, bank_events, snapshot_every=None
        )
        self.snapshotted: Repository[BankAccount] = Repository(self.store, BankAccount, bank_events)
        for size in sizes.load_events:
            self._populate(size)

    def _populate(self, size: int) -> None:
        store, batch, lag = self.store, self.sizes.append_batch, self.sizes.snapshot_lag
        # snapshot_every=1: a load that finds no snapshot takes one at the version it loaded.
        taker: Repository[BankAccount] = Repository(
            store, BankAccount, bank_events, snapshot_every=1
        )
        write_stream(store, f"load-{size}", account_events(size, LOAD_AMOUNT), batch)
        taker.load(f"load-{size}")
        version = write_stream(
            store, f"behind-{size}", account_events(size - lag, LOAD_AMOUNT), batch
        )
        taker.load(f"behind-{size}")
        write_stream(store, f"behind-{size}", iter(deposits(lag, LOAD_AMOUNT)), batch, version)
        for name, expected in ((f"load-{size}", size), (f"behind-{size}", size - lag)):
            assert self.snapshotted.snapshots is not None
            snapshot = self.snapshotted.snapshots.load(name)
            if snapshot is None or snapshot.version != expected:
                found = None if snapshot is None else snapshot.version
                raise RuntimeError(f"{name}: expected a snapshot at {expected}, found {found}")

    def loader(self, variant: str, size: int) -> tuple[str, Repository[BankAccount]]:
        """The aggregate id and repository of one load contender."""
        if variant == "none":
            return f"load-{size}", self.plain
        if variant == "head":
            return f"load-{size}", self.snapshotted
        return f"behind-{size}", self.snapshotted

    def close(self) -> None:
        self.store.close()  # and the snapshot store, which the store owns
