"""The repository and command handler on every backend: load, decide, append; snapshots;
history; audit metadata; optimistic concurrency with opt-in retries."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from cronica import (
    AggregateTypeMismatchError,
    Audit,
    ConcurrencyError,
    DuplicateEventError,
    EventStore,
    InvalidInputError,
    MemorySnapshotStore,
    NewEvent,
    Repository,
    Snapshot,
    StoreError,
    StreamNotFoundError,
    audit_context,
)
from cronica.examples.bank import BankAccount, InsufficientFundsError, bank_events
from cronica.privacy import SUBJECT_KEY
from cronica.repository import SEALED_STATE, idempotent_event_id

Accounts = Repository[BankAccount]


def opened(store: EventStore, account_id: str = "acc-1", **options: object) -> Accounts:
    accounts = Repository(store, BankAccount, bank_events, **options)  # type: ignore[arg-type]
    accounts.create(account_id, lambda a: a.open("Juan"))
    return accounts


def deposit(amount: str) -> Callable[[BankAccount], None]:
    return lambda account: account.deposit(amount)


def steps(*commands: Callable[[BankAccount], None]) -> Callable[[BankAccount], None]:
    """One command made of several steps (so it records several events)."""

    def run(account: BankAccount) -> None:
        for command in commands:
            command(account)

    return run


def test_a_command_loads_decides_appends_and_returns_the_position(store: EventStore) -> None:
    accounts = opened(store)
    result = accounts.execute("acc-1", deposit("50.00"))
    assert (result.from_version, result.to_version) == (2, 2)
    assert result.position == store.read_all()[-1].position
    assert result.aggregate.balance == Decimal("50.00")
    assert [e.event_type for e in result.events] == ["DepositMade"]
    assert accounts.load("acc-1").balance == Decimal("50.00")
    assert store.read_stream("acc-1")[-1].aggregate_type == "BankAccount"


def test_a_refused_command_writes_nothing(store: EventStore) -> None:
    accounts = opened(store)
    with pytest.raises(InsufficientFundsError):
        accounts.execute("acc-1", lambda a: a.withdraw("1.00"))
    assert [e.event_type for e in store.read_stream("acc-1")] == ["AccountCreated"]


def test_a_command_that_records_nothing_appends_nothing(store: EventStore) -> None:
    accounts = opened(store)
    result = accounts.execute("acc-1", lambda a: None)
    assert result.position is None and result.events == ()
    assert len(store.read_stream("acc-1")) == 1


def test_an_unknown_aggregate_is_not_found_and_creating_twice_conflicts(store: EventStore) -> None:
    accounts = opened(store)
    with pytest.raises(StreamNotFoundError):
        accounts.execute("nobody", deposit("1.00"))
    with pytest.raises(StreamNotFoundError):
        accounts.load("nobody")
    with pytest.raises(ConcurrencyError) as caught:
        accounts.create("acc-1", lambda a: a.open("Other"))
    assert caught.value.actual == 1


def test_a_stream_of_another_aggregate_type_is_not_loaded_as_this_one(store: EventStore) -> None:
    store.append("order-1", [NewEvent("CartCreated", {})], aggregate_type="Order")
    accounts = Repository(store, BankAccount, bank_events)
    with pytest.raises(AggregateTypeMismatchError):
        accounts.load("order-1")


def test_two_commands_racing_on_one_aggregate_cannot_both_win(store: EventStore) -> None:
    accounts = opened(store)
    accounts.execute("acc-1", deposit("100.00"))
    first = accounts.load("acc-1")
    second = accounts.load("acc-1")
    first.withdraw("80.00")
    second.withdraw("80.00")
    accounts.save(first)
    with pytest.raises(ConcurrencyError):
        accounts.save(second)
    assert accounts.load("acc-1").balance == Decimal("20.00")


def test_opt_in_retries_rerun_the_command_on_fresh_state(store: EventStore) -> None:
    accounts = opened(store)
    accounts.execute("acc-1", deposit("100.00"))
    runs: list[Decimal] = []
    interfered = False

    def withdraw_after_interference(account: BankAccount) -> None:
        nonlocal interfered
        runs.append(account.balance)
        if not interfered:  # another writer moves the stream after our load
            interfered = True
            accounts.execute("acc-1", deposit("5.00"))
        account.withdraw("30.00")

    with pytest.raises(ConcurrencyError):
        accounts.execute("acc-1", withdraw_after_interference)
    interfered = False
    runs.clear()
    result = accounts.execute("acc-1", withdraw_after_interference, retries=1)
    assert runs == [Decimal("105.00"), Decimal("110.00")]
    assert result.aggregate.balance == Decimal("80.00")


def test_retries_give_up_after_the_bound(store: EventStore) -> None:
    accounts = opened(store)
    attempts = 0

    def always_interfered(account: BankAccount) -> None:
        nonlocal attempts
        attempts += 1
        accounts.execute("acc-1", deposit("1.00"))
        account.deposit("1.00")

    with pytest.raises(ConcurrencyError):
        accounts.execute("acc-1", always_interfered, retries=2)
    assert attempts == 3
    with pytest.raises(InvalidInputError):
        accounts.execute("acc-1", deposit("1.00"), retries=-1)


def test_concurrent_withdrawals_with_retries_never_overdraw(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    store = make_store(backend)
    accounts = opened(store)
    accounts.execute("acc-1", deposit("100.00"))
    outcomes: list[str] = []

    def withdraw() -> None:
        repo = Repository(store, BankAccount, bank_events)
        try:
            repo.execute("acc-1", lambda a: a.withdraw("30.00"), retries=20)
            outcomes.append("ok")
        except InsufficientFundsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=withdraw) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok"] * 3 + ["refused"] * 3
    assert accounts.load("acc-1").balance == Decimal("10.00")


# -- audit -------------------------------------------------------------------------------------


def test_every_event_carries_who_why_and_the_command_that_caused_it(store: EventStore) -> None:
    accounts = opened(store)
    accounts.execute(
        "acc-1",
        steps(deposit("10.00"), deposit("5.00")),
        audit=Audit(actor="ana", reason="cash at the counter"),
    )
    first, second = store.read_stream("acc-1", from_version=2)
    assert first.metadata == second.metadata
    meta = first.metadata
    assert meta["actor"] == "ana" and meta["reason"] == "cash at the counter"
    assert meta["commandId"] == meta["correlationId"] == meta["causationId"]
    creation = store.read_stream("acc-1")[0].metadata
    assert creation["actor"] == "unknown" and "reason" not in creation
    assert creation["commandId"] != meta["commandId"]


def test_the_audit_context_reaches_commands_without_being_passed(store: EventStore) -> None:
    accounts = opened(store)
    with audit_context(actor="saga:transfer", correlation_id="t-1"):
        with audit_context(causation_id="event-9", reason="transfer step"):
            accounts.execute("acc-1", deposit("1.00"))
        accounts.execute("acc-1", deposit("2.00"), audit=Audit(reason="explicit wins"))
    inner, outer = (e.metadata for e in store.read_stream("acc-1", from_version=2))
    assert inner["actor"] == "saga:transfer" and inner["correlationId"] == "t-1"
    assert inner["causationId"] == "event-9" and inner["reason"] == "transfer step"
    assert outer["reason"] == "explicit wins" and outer["causationId"] == outer["commandId"]
    assert outer["correlationId"] == "t-1"


# -- history -----------------------------------------------------------------------------------


def test_an_aggregate_loads_as_of_any_version_or_moment(store: EventStore) -> None:
    accounts = opened(store)
    moments = []
    for amount in ("10.00", "20.00", "30.00"):
        accounts.execute("acc-1", deposit(amount))
        moments.append(store.read_stream("acc-1", backward=True, limit=1)[0].timestamp)
        time.sleep(0.002)
    assert [accounts.load("acc-1", version=v).balance for v in (1, 2, 3, 4)] == [
        Decimal("0.00"),
        Decimal("10.00"),
        Decimal("30.00"),
        Decimal("60.00"),
    ]
    assert accounts.load("acc-1", version=99).version == 4
    assert accounts.load("acc-1", as_of=moments[1]).balance == Decimal("30.00")
    assert accounts.load("acc-1", as_of=moments[1] + timedelta(microseconds=500)).version == 3
    before = store.read_stream("acc-1")[0].timestamp - timedelta(seconds=1)
    with pytest.raises(StreamNotFoundError):
        accounts.load("acc-1", as_of=before)


# -- snapshots ---------------------------------------------------------------------------------


def test_snapshots_are_taken_every_n_events_and_hold_the_state(store: EventStore) -> None:
    accounts = opened(store, snapshot_every=3)
    snapshots = accounts.snapshots
    assert snapshots is not None
    accounts.execute("acc-1", deposit("1.00"))
    assert snapshots.load("acc-1") is None
    accounts.execute("acc-1", deposit("2.00"))
    stored = snapshots.load("acc-1")
    # The state holds the owner, personal data: stored sealed with the account's key.
    assert stored is not None and set(stored.state) == {SEALED_STATE, SUBJECT_KEY}
    assert "Juan" not in str(stored.state)
    taken = accounts.stored_snapshot("acc-1")
    assert taken is not None
    assert (taken.version, taken.aggregate_type, taken.schema_version) == (3, "BankAccount", 1)
    assert taken.state == {"owner": "Juan", "balance": "3.00", "closed": False}
    assert taken.timestamp == store.read_stream("acc-1")[2].timestamp
    accounts.execute("acc-1", steps(deposit("1.00"), deposit("1.00"), deposit("1.00")))
    later = snapshots.load("acc-1")
    assert later is not None and later.version == 6


def test_loading_starts_from_the_snapshot_and_reads_only_later_events(store: EventStore) -> None:
    accounts = opened(store, snapshot_every=2)
    accounts.execute("acc-1", deposit("10.00"))  # snapshot at version 2
    accounts.execute("acc-1", deposit("1.00"))
    assert accounts.snapshots is not None
    # Doctor the snapshot: if loading uses it, the doctored balance shows through.
    accounts.snapshots.save(
        Snapshot("acc-1", "BankAccount", 2, 1, {"owner": "Juan", "balance": "500.00",
                 "closed": False}, datetime.now(UTC))
    )  # fmt: skip
    # A repository that has not seen the aggregate yet (another process) reads it.
    elsewhere = Repository(store, BankAccount, bank_events, snapshots=accounts.snapshots)
    assert elsewhere.load("acc-1").balance == Decimal("501.00")
    # Loads of the past before the snapshot do not use it.
    assert elsewhere.load("acc-1", version=1).balance == Decimal("0.00")
    early = store.read_stream("acc-1")[0].timestamp
    assert elsewhere.load("acc-1", as_of=early).balance == Decimal("0.00")


class _CountingSnapshots(MemorySnapshotStore):
    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def load(self, aggregate_id: str) -> Snapshot | None:
        self.loads += 1
        return super().load(aggregate_id)


def test_a_repository_remembers_the_snapshots_it_took_or_read(store: EventStore) -> None:
    counting = _CountingSnapshots()
    accounts = opened(store, snapshot_every=2, snapshots=counting)
    accounts.execute("acc-1", deposit("1.00"))  # snapshot at version 2, remembered
    loads_before = counting.loads
    for _ in range(5):
        accounts.execute("acc-1", deposit("1.00"))
    assert counting.loads == loads_before
    assert accounts.load("acc-1").balance == Decimal("6.00")
    other = Repository(store, BankAccount, bank_events, snapshots=counting)
    other.load("acc-1")
    other.load("acc-1")
    assert counting.loads == loads_before + 1
    other.forget_cached("acc-1")
    other.load("acc-1")
    assert counting.loads == loads_before + 2


def test_snapshot_every_none_turns_the_class_policy_off(store: EventStore) -> None:
    assert BankAccount.snapshot_every == 100
    accounts = Repository(store, BankAccount, bank_events, snapshot_every=None)
    assert accounts.snapshots is None and accounts.snapshot_every is None
    default = Repository(store, BankAccount, bank_events)
    assert default.snapshot_every == 100 and default.snapshots is not None


def test_a_snapshot_of_an_older_state_layout_is_ignored_and_replaced(store: EventStore) -> None:
    accounts = opened(store, snapshot_every=2)
    accounts.execute("acc-1", deposit("10.00"))
    assert accounts.snapshots is not None
    stale = Snapshot("acc-1", "BankAccount", 2, 0, {"saldo": "999"}, datetime.now(UTC))
    accounts.snapshots.save(stale)
    # Newer code, started later, finds the old snapshot.
    newer = Repository(store, BankAccount, bank_events, snapshots=accounts.snapshots)
    assert newer.load("acc-1").balance == Decimal("10.00")
    replaced = accounts.stored_snapshot("acc-1")
    assert replaced is not None
    assert (replaced.schema_version, replaced.state["balance"]) == (1, "10.00")


def test_a_long_history_without_a_snapshot_gets_one_on_load(store: EventStore) -> None:
    plain = opened(store)
    for _ in range(5):
        plain.execute("acc-1", deposit("1.00"))
    accounts = Repository(store, BankAccount, bank_events, snapshot_every=4)
    assert accounts.snapshots is not None and accounts.snapshots.load("acc-1") is None
    assert accounts.load("acc-1").balance == Decimal("5.00")
    taken = accounts.snapshots.load("acc-1")
    assert taken is not None and taken.version == 6


class _BrokenSnapshots(MemorySnapshotStore):
    def save(self, snapshot: Snapshot) -> None:
        raise StoreError("disk full")

    def load(self, aggregate_id: str) -> Snapshot | None:
        raise StoreError("unreadable")


def test_a_failing_snapshot_store_never_fails_a_command(store: EventStore) -> None:
    accounts = opened(store, snapshot_every=1, snapshots=_BrokenSnapshots())
    result = accounts.execute("acc-1", deposit("1.00"))
    assert result.to_version == 2
    assert accounts.load("acc-1").balance == Decimal("1.00")


@pytest.mark.parametrize("every", [0, -3, True, 1.5])
def test_a_snapshot_policy_must_be_a_positive_integer(store: EventStore, every: object) -> None:
    with pytest.raises(InvalidInputError, match="snapshot_every"):
        Repository(store, BankAccount, bank_events, snapshot_every=every)  # type: ignore[arg-type]


def count_stream_reads(store: EventStore) -> list[int]:
    """The ``from_version`` of every ``read_stream`` call on ``store`` from now on."""
    reads: list[int] = []
    original = store.read_stream

    def counting_read_stream(aggregate_id: str, from_version: int = 1, **options: Any) -> Any:
        reads.append(from_version)
        return original(aggregate_id, from_version, **options)

    store.read_stream = counting_read_stream  # type: ignore[method-assign, assignment]
    return reads


def test_with_snapshots_on_a_command_reads_only_the_events_after_the_state_it_saved(
    store: EventStore,
) -> None:
    reads = count_stream_reads(store)
    accounts = opened(store, snapshot_every=1000)
    for _ in range(3):
        accounts.execute("acc-1", deposit("1.00"))
    assert reads == [2, 3, 4]  # each load starts after the version the last command saved
    # Another writer moves the stream: the next load catches up from the remembered state.
    other = Repository(store, BankAccount, bank_events, snapshot_every=None)
    other.execute("acc-1", deposit("10.00"))
    assert accounts.load("acc-1").balance == Decimal("13.00")
    # The remembered state is a copy: changing a returned aggregate changes nothing stored.
    result = accounts.execute("acc-1", deposit("1.00"))
    result.aggregate.balance = Decimal("999.00")
    assert accounts.load("acc-1").balance == Decimal("14.00")
    # A refused command leaves it as it was.
    with pytest.raises(InsufficientFundsError):
        accounts.execute("acc-1", lambda a: (a.deposit("1.00"), a.withdraw("500.00")))  # type: ignore[func-returns-value]
    assert accounts.load("acc-1").balance == Decimal("14.00")


def test_the_remembered_state_never_answers_a_load_of_an_earlier_moment(store: EventStore) -> None:
    accounts = opened(store, snapshot_every=1000)
    accounts.execute("acc-1", deposit("1.00"))
    first_deposit = store.read_stream("acc-1")[-1].timestamp
    time.sleep(0.002)
    accounts.execute("acc-1", deposit("2.00"))
    assert accounts.load("acc-1", as_of=first_deposit).balance == Decimal("1.00")
    assert accounts.load("acc-1", version=2).balance == Decimal("1.00")
    assert accounts.load("acc-1").balance == Decimal("3.00")


def test_without_snapshots_nothing_is_remembered(store: EventStore) -> None:
    reads = count_stream_reads(store)
    accounts = opened(store, snapshot_every=None)
    accounts.execute("acc-1", deposit("1.00"))
    accounts.execute("acc-1", deposit("1.00"))
    assert reads == [1, 1]


# -- idempotency keys ---------------------------------------------------------------------------


def test_a_command_with_an_idempotency_key_runs_once(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create("acc-1", lambda a: a.open("Ana"))
    accounts.execute("acc-1", lambda a: a.deposit("100.00"))
    first = accounts.execute("acc-1", lambda a: a.withdraw("60.00"), idempotency_key="w-1")
    # Run again (a process that crashed before it could tell): the balance would no longer
    # cover it, but the command is not run: its first run is reported.
    again = accounts.execute("acc-1", lambda a: a.withdraw("60.00"), idempotency_key="w-1")
    assert (first.replayed, again.replayed) == (False, True)
    assert (again.from_version, again.to_version, again.position) == (
        first.from_version, first.to_version, first.position
    )  # fmt: skip
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    assert again.aggregate.balance == Decimal("40.00")
    assert store.stream_info("acc-1").version == 3
    # Every run of the command carries one command id, derived from the key.
    recorded = store.read_stream("acc-1")[-1]
    assert recorded.event_id == idempotent_event_id("w-1", 1)
    assert recorded.metadata["commandId"] == first.events[0].metadata["commandId"]


def test_an_idempotent_command_writing_several_events_replays_them_all(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, bank_events)

    def open_with_deposits(account: BankAccount) -> None:
        account.open("Ana")
        account.deposit("1")
        account.deposit("2")

    first = accounts.create("acc-1", open_with_deposits, idempotency_key="k")
    accounts.execute("acc-1", lambda a: a.deposit("3"))
    again = accounts.create("acc-1", lambda a: a.open("Ana"), idempotency_key="k")
    assert again.replayed and (again.from_version, again.to_version) == (1, 3)
    assert again.position == first.position
    assert [e.event_type for e in again.events] == ["AccountCreated", "DepositMade", "DepositMade"]


def test_an_idempotency_key_belongs_to_one_aggregate(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create("acc-1", lambda a: a.open("Ana"), idempotency_key="open")
    with pytest.raises(DuplicateEventError, match="acc-1"):
        accounts.create("acc-2", lambda a: a.open("Juan"), idempotency_key="open")
    assert store.read_stream("acc-2") == []


def test_read_event_finds_an_event_by_id(store: EventStore) -> None:
    appended = NewEvent("Happened", {"n": 1})
    store.append("s-1", [appended])
    found = store.read_event(appended.event_id)
    assert found is not None and (found.aggregate_id, found.data) == ("s-1", {"n": 1})
    assert store.read_event(str(appended.event_id)) == found
    assert store.read_event(uuid.uuid4()) is None
    with pytest.raises(InvalidInputError):
        store.read_event("not-a-uuid")


def test_a_run_refused_on_stale_state_reports_the_racing_run_that_succeeded(
    store: EventStore,
) -> None:
    """Process 2 loads the account (empty), then process 1 deposits and withdraws under the
    key; process 2's run of the same command is refused on its stale state: that is no
    refusal, the command happened, and process 2 must say so."""
    first = Repository(store, BankAccount, bank_events)
    second = Repository(store, BankAccount, bank_events)
    first.create("acc-1", lambda a: a.open("Ana"))

    def racing_withdrawal(account: BankAccount) -> None:
        first.execute("acc-1", lambda a: a.deposit("30.00"))
        first.execute("acc-1", lambda a: a.withdraw("30.00"), idempotency_key="w-1")
        account.withdraw("30.00")  # on the state loaded before: refused

    result = second.execute("acc-1", racing_withdrawal, idempotency_key="w-1")
    assert result.replayed and result.aggregate.balance == Decimal("0.00")
    assert [e.event_type for e in store.read_stream("acc-1")].count("WithdrawalMade") == 1


def test_a_racing_identical_run_leaves_the_repository_right(store: EventStore) -> None:
    first = Repository(store, BankAccount, bank_events)
    second = Repository(store, BankAccount, bank_events)
    first.create("acc-1", lambda a: a.open("Ana"))
    first.execute("acc-1", lambda a: a.deposit("100.00"))
    second.load("acc-1")  # remembered at version 2

    def racing_withdrawal(account: BankAccount) -> None:
        first.execute("acc-1", lambda a: a.withdraw("30.00"), idempotency_key="w-1")
        account.withdraw("30.00")  # the same events, on the state before

    second.execute("acc-1", racing_withdrawal, idempotency_key="w-1")
    assert store.stream_info("acc-1").version == 3
    assert second.load("acc-1").balance == Decimal("70.00")
    after = second.execute("acc-1", lambda a: a.deposit("1.00"))  # no stale version
    assert (after.to_version, after.aggregate.balance) == (4, Decimal("71.00"))
