"""The seed's bank story (sections 1.3 and 1.4): an account whose state is rebuilt from events.

Juan Pérez opens account ``acc_12345``, deposits 1000.00 and withdraws 500.00. The balance is
stored nowhere: it is rebuilt from the events, 0 + 1000.00 - 500.00 = 500.00. Each step is a small
command handler: load the account from its events, check the invariant (the balance never goes
negative), and append one event at the version it loaded (optimistic concurrency). Every event
carries who did it, why, and the story's correlation id in its metadata (the seed's audit trail).

Plain functions over an :class:`~cronica.EventStore`; ``cronica demo`` prints what they return.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from cronica.errors import ConcurrencyError, InvalidInputError, StreamNotFoundError
from cronica.events import NO_STREAM, AppendResult, NewEvent, RecordedEvent
from cronica.privacy.cipher import PersonalData, readable
from cronica.store.base import EventStore

ACCOUNT_ID = "acc_12345"
OWNER = "Juan Pérez"
AGGREGATE_TYPE = "BankAccount"
DEPOSIT = Decimal("1000.00")
WITHDRAWAL = Decimal("500.00")

_CENT = Decimal("0.01")
_SIGNS = {"DepositMade": 1, "WithdrawalMade": -1}
"""How each event type changes the balance."""


@dataclass(frozen=True, slots=True)
class Account:
    """The account's state, as rebuilt from its events."""

    account_id: str
    owner: str = ""
    balance: Decimal = Decimal("0")
    version: int = 0


@dataclass(frozen=True, slots=True)
class Audit:
    """Who made a change, why, and which story (correlation id) it belongs to."""

    actor: str
    reason: str
    correlation_id: str

    def metadata(self) -> dict[str, str]:
        return {"actor": self.actor, "reason": self.reason, "correlationId": self.correlation_id}


@dataclass(frozen=True, slots=True)
class Story:
    """What one run of the story wrote and read back."""

    account_id: str
    correlation_id: str
    events: list[RecordedEvent]
    account: Account
    deposit: RecordedEvent
    as_of: datetime
    past_events: list[RecordedEvent]
    past_account: Account


# -- state from events ---------------------------------------------------------------------------


def money(amount: Decimal) -> str:
    """An amount as the events carry it: a decimal string with two places (``"1000.00"``)."""
    return str(amount.quantize(_CENT))


def evolve(account: Account, event: RecordedEvent) -> Account:
    """The account after ``event``."""
    if event.event_type == "AccountCreated":
        return replace(account, owner=str(event.data["owner"]), version=event.version)
    sign = _SIGNS.get(event.event_type)
    if sign is None:
        return replace(account, version=event.version)
    amount = Decimal(str(event.data["amount"]))
    return replace(account, balance=account.balance + sign * amount, version=event.version)


def rebuild(account_id: str, events: Sequence[RecordedEvent]) -> Account:
    """Replay ``events`` from an empty account."""
    return functools.reduce(evolve, events, Account(account_id))


def balance_formula(events: Sequence[RecordedEvent]) -> str:
    """The seed's sum, e.g. ``0 + 1000.00 - 500.00 = 500.00``."""
    terms = ["0"]
    for event in events:
        sign = _SIGNS.get(event.event_type)
        if sign is not None:
            terms.append(f"{'+' if sign > 0 else '-'} {event.data['amount']}")
    balance = rebuild("", events).balance
    return f"{' '.join(terms)} = {money(balance)}"


def describe(event: RecordedEvent) -> str:
    """The event's data for people: ``owner: Juan Pérez``, ``amount: 1000.00``."""
    return ", ".join(f"{key}: {value}" for key, value in event.data.items())


# -- command handlers ----------------------------------------------------------------------------


def load(store: EventStore, account_id: str) -> Account:
    """The account rebuilt from its stream; ``StreamNotFoundError`` if it was never opened."""
    account = rebuild(account_id, read(store, account_id))
    if account.version == 0:
        raise StreamNotFoundError(account_id)
    return account


def personal_data(store: EventStore) -> PersonalData:
    """The owner is personal data: encrypted with the account's key (its data subject)."""
    return PersonalData(store.subject_keys(), {"AccountCreated": ("owner",)})


def read(store: EventStore, account_id: str, as_of: datetime | None = None) -> list[RecordedEvent]:
    """The account's events (as they were at ``as_of``), the owner decrypted."""
    return readable(store.read_stream(account_id, as_of=as_of), store.subject_keys)


def open_account(store: EventStore, account_id: str, owner: str, audit: Audit) -> AppendResult:
    """Append ``AccountCreated``; ``ConcurrencyError`` if the account already exists."""
    event = NewEvent("AccountCreated", {"owner": owner}, audit.metadata())
    event = personal_data(store).encrypt(event, account_id)
    return store.append(account_id, [event], NO_STREAM, AGGREGATE_TYPE)


def deposit(store: EventStore, account_id: str, amount: Decimal, audit: Audit) -> AppendResult:
    """Append ``DepositMade`` at the version the account was loaded at."""
    account = load(store, account_id)
    _check_positive(amount)
    return _record(store, account, "DepositMade", amount, audit)


def withdraw(store: EventStore, account_id: str, amount: Decimal, audit: Audit) -> AppendResult:
    """Append ``WithdrawalMade``, unless the balance would go negative (the invariant)."""
    account = load(store, account_id)
    _check_positive(amount)
    if amount > account.balance:
        raise InvalidInputError(
            f"account {account_id}: withdrawing {money(amount)} would leave the balance "
            f"negative (it is {money(account.balance)})"
        )
    return _record(store, account, "WithdrawalMade", amount, audit)


def _check_positive(amount: Decimal) -> None:
    if not amount.is_finite() or amount <= 0:
        raise InvalidInputError(f"an amount must be positive, not {amount}")
    if amount != amount.quantize(_CENT):
        raise InvalidInputError(f"an amount has at most two decimal places, not {amount}")


def _record(
    store: EventStore, account: Account, event_type: str, amount: Decimal, audit: Audit
) -> AppendResult:
    event = NewEvent(event_type, {"amount": money(amount)}, audit.metadata())
    return store.append(account.account_id, [event], account.version, AGGREGATE_TYPE)


# -- the story -----------------------------------------------------------------------------------


def run_story(store: EventStore, base_id: str = ACCOUNT_ID, owner: str = OWNER) -> Story:
    """Open an account, deposit, withdraw; read it all back, now and as of after the deposit.

    The account is ``base_id``, or ``base_id_2``, ``base_id_3``, ... when earlier runs took it.
    """
    correlation_id = str(uuid.uuid4())
    opening = Audit("teller:ana.garcia", "opened at branch 12", correlation_id)
    account_id = open_fresh_account(store, base_id, owner, opening)
    deposit(store, account_id, DEPOSIT, Audit("customer:juan.perez", "salary", correlation_id))
    deposited = store.read_stream(account_id, backward=True, limit=1)[0]
    _wait_until_after(deposited.timestamp)
    withdraw(store, account_id, WITHDRAWAL, Audit("atm:0042", "cash withdrawal", correlation_id))
    events = read(store, account_id)
    past_events = read(store, account_id, as_of=deposited.timestamp)
    return Story(
        account_id=account_id,
        correlation_id=correlation_id,
        events=events,
        account=rebuild(account_id, events),
        deposit=deposited,
        as_of=deposited.timestamp,
        past_events=past_events,
        past_account=rebuild(account_id, past_events),
    )


def open_fresh_account(store: EventStore, base_id: str, owner: str, audit: Audit) -> str:
    """Open the first of ``base_id``, ``base_id_2``, ... that does not exist; return its id."""
    number = 1
    while True:
        account_id = base_id if number == 1 else f"{base_id}_{number}"
        number += 1
        if _exists(store, account_id):
            continue
        try:
            open_account(store, account_id, owner, audit)
        except ConcurrencyError:  # another run opened it first
            continue
        return account_id


def _exists(store: EventStore, account_id: str) -> bool:
    try:
        store.stream_info(account_id)
    except StreamNotFoundError:
        return False
    return True


def _wait_until_after(moment: datetime, at_most: float = 0.05) -> None:
    """Let the clock pass ``moment`` so the next event gets a later timestamp.

    Without it a coarse clock could stamp the withdrawal with the deposit's time, and the
    history as of the deposit would already hold the withdrawal.
    """
    deadline = time.monotonic() + at_most
    while datetime.now(UTC) <= moment and time.monotonic() < deadline:
        time.sleep(0.001)
