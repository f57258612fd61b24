"""A realistic bank history for ``cronica demo``: thousands of accounts over months.

Accounts open over the first weeks; then deposits, withdrawals and transfers arrive at random
moments until now, each decided by the :class:`~cronica.examples.bank.BankAccount` aggregate
(so no balance ever goes negative and no closed account moves); a few accounts are emptied and
closed near the end. Every event carries who did it and why.

The events are back-dated, so they are written with :meth:`EventStore.import_events` (which
keeps their timestamps) rather than appended now: ``asOf`` queries then have months to travel.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cronica.audit import Audit
from cronica.events import RecordedEvent
from cronica.examples.bank import BankAccount, bank_events
from cronica.store.base import CopyProgress, EventStore

FIRST_NAMES = ("María", "José", "Lucía", "Carlos", "Ana", "Luis", "Carmen", "Javier", "Elena",
               "Miguel", "Sofía", "Pablo", "Laura", "Diego", "Isabel", "Andrés")  # fmt: skip
LAST_NAMES = ("García", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
              "Díaz", "Romero", "Navarro", "Torres", "Ruiz", "Vargas", "Castro", "Ortega",
              "Molina")  # fmt: skip
CHANNELS = ("teller:ana.garcia", "teller:luis.perez", "atm:0042", "atm:0117", "online", "app")
BATCH = 5000
"""Events per import transaction."""
SOURCE = "cronica demo history"
"""The copy-progress record of the history: ``complete`` once the last batch is in."""


@dataclass(frozen=True, slots=True)
class History:
    """What :func:`fill_history` wrote."""

    accounts: int
    events: int
    transfers: int
    closed: int
    first: datetime
    last: datetime


def account_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:05d}" for n in range(1, count + 1)]


def fill_history(
    store: EventStore,
    *,
    accounts: int,
    months: int,
    now: datetime,
    seed: int = 1,
    prefix: str = "acc-",
    progress: Callable[[int], None] | None = None,
) -> History:
    """Write the history of ``accounts`` accounts over ``months`` months up to ``now``;
    ``progress(n)`` hears of every batch of ``n`` events written."""
    written = 0
    batch: list[RecordedEvent] = []
    stats = _Stats(now)
    events = generate(accounts, months, now, seed, prefix, stats)
    upcoming = next(events, None)
    while upcoming is not None:
        batch.append(upcoming)
        upcoming = next(events, None)
        if len(batch) >= BATCH or upcoming is None:
            written += _write(store, batch, written, progress, last=upcoming is None)
            batch = []
    return History(accounts, written, stats.transfers, stats.closed, stats.first, stats.last)


def history_state(store: EventStore) -> str | None:
    """``complete``, ``partial`` (an interrupted run), or None (no history yet)."""
    found = store.copy_progress(SOURCE)
    return None if found is None else found.checksum


def _write(
    store: EventStore,
    batch: list[RecordedEvent],
    before: int,
    progress: Callable[[int], None] | None,
    *,
    last: bool,
) -> int:
    done = before + len(batch)
    state = "complete" if last else "partial"
    store.import_events(batch, CopyProgress(SOURCE, done, done, done, state))
    if progress is not None:
        progress(len(batch))
    return len(batch)


class _Stats:
    def __init__(self, now: datetime) -> None:
        self.transfers = 0
        self.closed = 0
        self.first = now
        self.last = now - timedelta(days=100 * 365)


def generate(
    accounts: int, months: int, now: datetime, seed: int, prefix: str, stats: _Stats
) -> Iterator[RecordedEvent]:
    """The history's events in time order (within a stream, in version order)."""
    rng = random.Random(seed)
    start = now - timedelta(days=30 * months)
    span = (now - start).total_seconds()
    ids = account_ids(prefix, accounts)
    # (when, tie-breaker, account, action)
    agenda: list[tuple[datetime, int, str, str]] = []
    order = 0
    for account_id in ids:
        opened = start + timedelta(seconds=rng.uniform(0, 0.25) * span)
        agenda.append((opened, order, account_id, "open"))
        order += 1
        for _ in range(rng.randint(4, 24)):
            at = opened + timedelta(seconds=rng.uniform(60, (now - opened).total_seconds()))
            action = rng.choices(("deposit", "withdraw", "transfer"), weights=(50, 30, 20))[0]
            agenda.append((at, order, account_id, action))
            order += 1
    for account_id in rng.sample(ids, max(1, accounts // 50)):
        at = now - timedelta(seconds=rng.uniform(60, 3 * 86400))
        agenda.append((at, order, account_id, "close"))
        order += 1
    heapq.heapify(agenda)
    live: dict[str, BankAccount] = {}
    opened_ids: list[str] = []
    while agenda:
        at, _, account_id, action = heapq.heappop(agenda)
        account = live.get(account_id)
        if action == "open":
            account = live[account_id] = BankAccount(account_id)
            owner = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            account.open(owner)
            opened_ids.append(account_id)
            stats.first = min(stats.first, at)
            yield from _flush(account, at, "teller:ana.garcia", "new customer", rng)
            continue
        if account is None or account.closed:
            continue
        channel = rng.choice(CHANNELS)
        if action == "deposit":
            account.deposit(_amount(rng, 20, 3000))
            yield from _flush(account, at, channel, "deposit", rng)
        elif action == "withdraw" and account.balance > 0:
            account.withdraw(min(account.balance, _amount(rng, 10, 800)))
            yield from _flush(account, at, channel, "cash withdrawal", rng)
        elif action == "transfer" and account.balance > 0:
            other = live.get(rng.choice(opened_ids))
            if other is None or other.id == account.id or other.closed:
                continue
            money = min(account.balance, _amount(rng, 5, 500))
            transfer_id = f"tr-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
            account.send_transfer(transfer_id, other.id, money)
            other.receive_transfer(transfer_id, account.id, money)
            stats.transfers += 1
            yield from _flush(account, at, channel, "transfer", rng, transfer_id)
            yield from _flush(other, at, channel, "transfer", rng, transfer_id)
        elif action == "close":
            if account.balance > 0:
                account.withdraw(account.balance)
            account.close()
            stats.closed += 1
            yield from _flush(account, at, "teller:luis.perez", "customer closed the account", rng)
        stats.last = max(stats.last, at)


def _amount(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def _flush(
    account: BankAccount,
    at: datetime,
    actor: str,
    reason: str,
    rng: random.Random,
    correlation: str | None = None,
) -> Iterator[RecordedEvent]:
    """The aggregate's pending events as stored events of moment ``at``."""
    command_id = str(uuid.UUID(int=rng.getrandbits(128)))
    metadata = Audit(actor, reason, correlation, command_id=command_id).metadata()
    version = account.stored_version
    for payload in account.pending_events:
        version += 1
        new = bank_events.to_new_event(payload, metadata, uuid.UUID(int=rng.getrandbits(128)))
        yield RecordedEvent(
            new.event_id,
            new.event_type,
            account.id,
            BankAccount.aggregate_type,
            version,
            0,
            at,
            new.data,
            new.metadata,
        )
    account.mark_saved()
