"""The bank account example (seed 1.4.2): its rules, its events, and its wire contract."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronica import (
    ConcurrencyError,
    EventStore,
    InvalidInputError,
    InvariantError,
    Repository,
    StreamNotFoundError,
)
from cronica.examples.bank import (
    AccountClosed,
    AccountClosedError,
    AccountCreated,
    BankAccount,
    DepositMade,
    InsufficientFundsError,
    InvalidAmountError,
    TransferReceived,
    TransferSent,
    WithdrawalMade,
    bank_events,
)
from cronica.privacy import PREFIX, SUBJECT_KEY
from cronica.testing import AggregateScenario

Command = Callable[[BankAccount], object]

ACCOUNT = "acc-1"
OPENED = AccountCreated(owner="Ana")
FUNDED = (OPENED, DepositMade(amount=Decimal("100.00")))

scenario = AggregateScenario(BankAccount, ACCOUNT)


# -- opening -----------------------------------------------------------------------------------


def test_an_account_is_opened_for_its_owner_with_an_empty_balance() -> None:
    account = scenario.given_nothing().when(lambda a: a.open("Ana")).then(OPENED)
    assert (account.owner, account.balance, account.closed, account.version) == (
        "Ana",
        Decimal(0),
        False,
        1,
    )


@pytest.mark.parametrize("owner", ["", "   ", None, 42])
def test_an_account_without_an_owner_is_refused(owner: Any) -> None:
    scenario.given_nothing().when(lambda a: a.open(owner)).then_raises(
        InvariantError, match="needs an owner"
    )


def test_opening_an_account_twice_is_refused_and_records_nothing() -> None:
    scenario.given(OPENED).when(lambda a: a.open("Bob")).then_raises(
        InvariantError, match="already exists"
    )


def test_opening_an_account_that_has_history_is_refused() -> None:
    scenario.given(*FUNDED).when(lambda a: a.open("Ana")).then_raises(
        InvariantError, match="already exists"
    )


# -- deposits and withdrawals ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["50.00", Decimal("50.00"), "50", 50, Decimal("50.5"), "0.01", 1, Decimal("1.000")]
)
def test_a_deposit_of_a_positive_amount_is_recorded_and_raises_the_balance(
    value: Decimal | int | str,
) -> None:
    expected = Decimal(value).quantize(Decimal("0.01"))
    account = (
        scenario.given(*FUNDED).when(lambda a: a.deposit(value)).then(DepositMade(amount=expected))
    )
    # Stored with two places, whatever form the amount came in.
    [recorded] = account.pending_events
    assert isinstance(recorded, DepositMade) and str(recorded.amount) == str(expected)
    assert account.balance == Decimal("100.00") + expected
    assert account.version == 3


def test_a_withdrawal_within_the_balance_is_recorded_and_lowers_the_balance() -> None:
    account = (
        scenario.given(*FUNDED)
        .when(lambda a: a.withdraw("30.50"))
        .then(WithdrawalMade(amount=Decimal("30.50")))
    )
    assert account.balance == Decimal("69.50")


def test_the_whole_balance_can_be_withdrawn() -> None:
    account = (
        scenario.given(*FUNDED)
        .when(lambda a: a.withdraw("100.00"))
        .then(WithdrawalMade(amount=Decimal("100.00")))
    )
    assert account.balance == 0


def test_a_withdrawal_larger_than_the_balance_is_refused_and_records_nothing() -> None:
    given = scenario.given(*FUNDED)
    given.when(lambda a: a.withdraw("100.01")).then_raises(
        InsufficientFundsError, match="holds 100.00, less than 100.01"
    )
    assert given.aggregate.balance == Decimal("100.00")
    assert given.aggregate.version == 2


def test_a_new_account_cannot_withdraw_anything() -> None:
    scenario.given(OPENED).when(lambda a: a.withdraw("0.01")).then_raises(InsufficientFundsError)


def test_several_commands_record_their_events_in_order() -> None:
    def story(account: BankAccount) -> None:
        account.deposit("10.00")
        account.withdraw("25.00")
        account.deposit("5")

    account = (
        scenario.given(*FUNDED)
        .when(story)
        .then(
            DepositMade(amount=Decimal("10.00")),
            WithdrawalMade(amount=Decimal("25.00")),
            DepositMade(amount=Decimal("5")),
        )
    )
    assert account.balance == Decimal("90.00")
    assert (account.version, account.stored_version) == (5, 2)


# -- amounts -----------------------------------------------------------------------------------

AMOUNT_COMMANDS = [
    pytest.param(lambda v: lambda a: a.deposit(v), id="deposit"),
    pytest.param(lambda v: lambda a: a.withdraw(v), id="withdraw"),
    pytest.param(lambda v: lambda a: a.send_transfer("tr-1", "acc-2", v), id="send_transfer"),
    pytest.param(lambda v: lambda a: a.receive_transfer("tr-1", "acc-2", v), id="receive"),
]

INVALID_AMOUNTS = [
    pytest.param(0, id="int-zero"),
    pytest.param("0", id="str-zero"),
    pytest.param("0.00", id="str-zero-cents"),
    pytest.param(Decimal("0"), id="decimal-zero"),
    pytest.param(Decimal("-0.00"), id="negative-zero"),
    pytest.param(-5, id="int-negative"),
    pytest.param("-10.00", id="str-negative"),
    pytest.param(Decimal("-0.01"), id="decimal-negative"),
    pytest.param("NaN", id="str-nan"),
    pytest.param(Decimal("NaN"), id="decimal-nan"),
    pytest.param("sNaN", id="str-snan"),
    pytest.param(Decimal("sNaN"), id="decimal-snan"),
    pytest.param("Infinity", id="str-infinity"),
    pytest.param("-Infinity", id="str-minus-infinity"),
    pytest.param(Decimal("Infinity"), id="decimal-infinity"),
    pytest.param("0.001", id="three-places"),
    pytest.param("10.005", id="three-places-large"),
    pytest.param("1E+2", id="exponent"),
    pytest.param("5_0", id="underscore"),
    pytest.param(" 7 ", id="spaces"),
    pytest.param("1e15", id="too-large-exponent"),
    pytest.param(Decimal("1e15"), id="too-large"),
    pytest.param(10**16, id="too-large-int"),
    pytest.param(Decimal("0.0000001"), id="seven-places"),
    pytest.param("", id="empty"),
    pytest.param("ten", id="not-a-number"),
    pytest.param("10,00", id="comma"),
]


@pytest.mark.parametrize("value", INVALID_AMOUNTS)
@pytest.mark.parametrize("command", AMOUNT_COMMANDS)
def test_an_amount_that_is_not_positive_finite_and_in_cents_is_refused(
    command: Callable[[Any], Command], value: Any
) -> None:
    given = scenario.given(*FUNDED)
    given.when(command(value)).then_raises(InvalidAmountError)
    assert given.aggregate.balance == Decimal("100.00")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(10.0, id="float"),
        pytest.param(0.1, id="float-tenth"),
        pytest.param(float("nan"), id="float-nan"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
        pytest.param([10], id="list"),
    ],
)
@pytest.mark.parametrize("command", AMOUNT_COMMANDS)
def test_an_amount_that_is_not_a_decimal_is_an_input_error(
    command: Callable[[Any], Command], value: Any
) -> None:
    error = scenario.given(*FUNDED).when(command(value)).then_raises(InvalidInputError)
    assert not isinstance(error, InvariantError)


def test_an_invalid_amount_is_a_broken_rule_not_malformed_input() -> None:
    assert issubclass(InvalidAmountError, InvariantError)
    assert not issubclass(InvalidAmountError, InvalidInputError)


# -- transfers ---------------------------------------------------------------------------------


def test_a_transfer_sent_within_the_balance_is_recorded_and_lowers_the_balance() -> None:
    account = (
        scenario.given(*FUNDED)
        .when(lambda a: a.send_transfer("tr-1", "acc-2", "40.00"))
        .then(TransferSent(transfer_id="tr-1", to="acc-2", amount=Decimal("40.00")))
    )
    assert account.balance == Decimal("60.00")


def test_a_transfer_larger_than_the_balance_is_refused_and_records_nothing() -> None:
    given = scenario.given(*FUNDED)
    given.when(lambda a: a.send_transfer("tr-1", "acc-2", "100.01")).then_raises(
        InsufficientFundsError
    )
    assert given.aggregate.balance == Decimal("100.00")


def test_a_transfer_to_the_same_account_is_refused_and_records_nothing() -> None:
    scenario.given(*FUNDED).when(lambda a: a.send_transfer("tr-1", ACCOUNT, "10.00")).then_raises(
        InvariantError, match="two different accounts"
    )


def test_a_transfer_received_is_recorded_and_raises_the_balance() -> None:
    account = (
        scenario.given(*FUNDED)
        .when(lambda a: a.receive_transfer("tr-9", "acc-2", "0.50"))
        .then(TransferReceived(transfer_id="tr-9", from_="acc-2", amount=Decimal("0.50")))
    )
    assert account.balance == Decimal("100.50")


# -- closing -----------------------------------------------------------------------------------


def test_an_empty_account_can_be_closed() -> None:
    account = scenario.given(OPENED).when(lambda a: a.close()).then(AccountClosed())
    assert account.closed


def test_an_account_emptied_by_a_withdrawal_can_be_closed() -> None:
    account = (
        scenario.given(*FUNDED, WithdrawalMade(amount=Decimal("100.00")))
        .when(lambda a: a.close())
        .then(AccountClosed())
    )
    assert account.closed


def test_an_account_holding_money_cannot_be_closed() -> None:
    given = scenario.given(*FUNDED)
    given.when(lambda a: a.close()).then_raises(
        InvariantError, match="holds 100.00: only an empty account can be closed"
    )
    assert not given.aggregate.closed


CLOSED = (OPENED, AccountClosed())

COMMANDS_ON_A_CLOSED_ACCOUNT = [
    pytest.param(lambda a: a.deposit("10.00"), id="deposit"),
    pytest.param(lambda a: a.withdraw("10.00"), id="withdraw"),
    pytest.param(lambda a: a.send_transfer("tr-1", "acc-2", "10.00"), id="send_transfer"),
    pytest.param(lambda a: a.receive_transfer("tr-1", "acc-2", "10.00"), id="receive_transfer"),
    pytest.param(lambda a: a.close(), id="close"),
]


@pytest.mark.parametrize("command", COMMANDS_ON_A_CLOSED_ACCOUNT)
def test_a_closed_account_accepts_no_command(command: Command) -> None:
    given = scenario.given(*CLOSED)
    given.when(command).then_raises(AccountClosedError, match="is closed")
    assert given.aggregate.balance == 0


def test_a_closed_account_cannot_be_opened_again() -> None:
    scenario.given(*CLOSED).when(lambda a: a.open("Ana")).then_raises(InvariantError)


def test_a_closed_account_is_reported_closed_before_any_lack_of_funds() -> None:
    # The balance is 0: closing must be the reason, not the missing money.
    scenario.given(*CLOSED).when(lambda a: a.withdraw("1000.00")).then_raises(AccountClosedError)


# -- the balance, as a property ----------------------------------------------------------------

VALID_CENTS = st.decimals(
    min_value=Decimal("-50.00"), max_value=Decimal("500.00"), places=2, allow_nan=False
)
ODD_AMOUNTS = st.sampled_from(
    [
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        Decimal("0.001"),
        Decimal("12.345"),
        Decimal("-0.00"),
    ]
)
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["deposit", "withdraw", "transfer"]),
        st.one_of(VALID_CENTS, VALID_CENTS.map(str), ODD_AMOUNTS),
    ),
    max_size=40,
)


def is_valid_amount(value: Decimal | str) -> bool:
    number = Decimal(value)
    exponent = number.as_tuple().exponent
    return number.is_finite() and number > 0 and isinstance(exponent, int) and exponent >= -2


@settings(max_examples=200, deadline=None)
@given(OPERATIONS)
def test_the_balance_replayed_from_the_events_is_their_sum_and_never_negative(
    operations: list[tuple[str, Decimal | str]],
) -> None:
    account = BankAccount(ACCOUNT)
    account.open("Ana")
    expected = Decimal(0)
    for kind, value in operations:
        before = len(account.pending_events)
        valid = is_valid_amount(value)
        covered = valid and Decimal(value) <= expected
        try:
            if kind == "deposit":
                account.deposit(value)
            elif kind == "withdraw":
                account.withdraw(value)
            else:
                account.send_transfer(f"tr-{before}", "acc-2", value)
        except InvalidAmountError:
            assert not valid
        except InsufficientFundsError:
            assert valid and not covered and kind != "deposit"
        else:
            assert valid and (kind == "deposit" or covered)
            expected += Decimal(value) if kind == "deposit" else -Decimal(value)
        accepted = valid and (kind == "deposit" or covered)
        assert len(account.pending_events) == before + accepted
        assert account.balance == expected >= 0

    # Rebuilt from the events, through their JSON form: the same balance at every step.
    replayed = BankAccount(ACCOUNT)
    for version, event in enumerate(account.pending_events, start=1):
        new_event = bank_events.to_new_event(event)
        payload = bank_events.get(new_event.event_type).adapter.validate_python(new_event.data)
        assert payload == event
        replayed.replay(payload, version)
        assert replayed.balance >= 0
    assert replayed.balance == expected
    assert replayed.version == account.version
    deposits = sum(
        (e.amount for e in account.pending_events if isinstance(e, DepositMade)), Decimal(0)
    )
    spent = sum(
        (e.amount for e in account.pending_events if isinstance(e, WithdrawalMade | TransferSent)),
        Decimal(0),
    )
    assert replayed.balance == deposits - spent


# -- through a repository, on every backend ----------------------------------------------------


def test_an_account_is_created_changed_and_loaded_through_a_repository(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, bank_events)
    created = accounts.create(ACCOUNT, lambda a: a.open("Juan Pérez"))
    assert (created.from_version, created.to_version) == (1, 1)
    accounts.execute(ACCOUNT, lambda a: a.deposit("50.00"))
    result = accounts.execute(ACCOUNT, lambda a: a.withdraw("20.00"))
    assert (result.from_version, result.to_version) == (3, 3)
    assert result.position == store.read_all()[-1].position
    assert result.aggregate.balance == Decimal("30.00")

    loaded = accounts.load(ACCOUNT)
    assert (loaded.owner, loaded.balance, loaded.version, loaded.closed) == (
        "Juan Pérez",
        Decimal("30.00"),
        3,
        False,
    )
    assert loaded.pending_events == ()
    balances = [accounts.load(ACCOUNT, version=v).balance for v in (1, 2, 3)]
    assert balances == [Decimal(0), Decimal("50.00"), Decimal("30.00")]


def test_stored_events_carry_the_wire_contract(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create(ACCOUNT, lambda a: a.open("Juan Pérez"))
    accounts.execute(ACCOUNT, lambda a: a.deposit(Decimal("50.00")))
    accounts.execute(ACCOUNT, lambda a: a.send_transfer("tr-1", "acc-2", "20.00"))
    accounts.execute(ACCOUNT, lambda a: a.receive_transfer("tr-2", "acc-3", "5.50"))
    accounts.execute(ACCOUNT, lambda a: a.withdraw("35.50"))
    accounts.execute(ACCOUNT, lambda a: a.close())

    stored = store.read_stream(ACCOUNT)
    # The owner is personal data: stored encrypted, read (decrypted) as the contract's name.
    assert stored[0].data["owner"].startswith(PREFIX) and "Juan" not in str(stored[0].data)
    assert stored[0].metadata[SUBJECT_KEY] == ACCOUNT
    decrypted = accounts.personal_data.decrypt_all(stored)
    assert [(e.event_type, e.data) for e in decrypted] == [
        ("AccountCreated", {"owner": "Juan Pérez"}),
        ("DepositMade", {"amount": "50.00"}),
        ("TransferSent", {"transferId": "tr-1", "to": "acc-2", "amount": "20.00"}),
        ("TransferReceived", {"transferId": "tr-2", "from": "acc-3", "amount": "5.50"}),
        ("WithdrawalMade", {"amount": "35.50"}),
        ("AccountClosed", {}),
    ]
    assert {e.aggregate_type for e in stored} == {"BankAccount"}
    assert [e.version for e in stored] == [1, 2, 3, 4, 5, 6]
    # Version 1 schemas: no schema version in the metadata.
    assert all("schemaVersion" not in e.metadata for e in stored)
    assert store.stream_info(ACCOUNT).aggregate_type == "BankAccount"
    assert store.read_all(aggregate_types=["BankAccount"]) == stored

    closed = accounts.load(ACCOUNT)
    assert closed.closed
    assert closed.balance == 0


def test_a_refused_command_writes_nothing_to_the_store(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create(ACCOUNT, lambda a: a.open("Ana"))
    accounts.execute(ACCOUNT, lambda a: a.deposit("100.00"))
    before = store.read_all()

    with pytest.raises(InsufficientFundsError):
        accounts.execute(ACCOUNT, lambda a: a.withdraw("100.01"))
    with pytest.raises(InvalidAmountError):
        accounts.execute(ACCOUNT, lambda a: a.deposit("-1.00"))
    with pytest.raises(InvalidInputError):
        accounts.execute(ACCOUNT, lambda a: a.deposit(1.5))  # type: ignore[arg-type]
    with pytest.raises(InvariantError, match="only an empty account"):
        accounts.execute(ACCOUNT, lambda a: a.close())
    with pytest.raises(InvariantError, match="two different accounts"):
        accounts.execute(ACCOUNT, lambda a: a.send_transfer("tr-1", ACCOUNT, "1.00"))

    assert store.read_all() == before
    assert store.stream_info(ACCOUNT).version == 2
    assert accounts.load(ACCOUNT).balance == Decimal("100.00")


def test_a_command_on_a_closed_account_writes_nothing_to_the_store(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create(ACCOUNT, lambda a: a.open("Ana"))
    accounts.execute(ACCOUNT, lambda a: a.close())
    with pytest.raises(AccountClosedError):
        accounts.execute(ACCOUNT, lambda a: a.deposit("10.00"))
    assert [e.event_type for e in store.read_all()] == ["AccountCreated", "AccountClosed"]


def test_creating_an_account_that_exists_is_refused_and_writes_nothing(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create(ACCOUNT, lambda a: a.open("Ana"))
    with pytest.raises(ConcurrencyError):
        accounts.create(ACCOUNT, lambda a: a.open("Bob"))
    assert [e.data for e in accounts.personal_data.decrypt_all(store.read_all())] == [
        {"owner": "Ana"}
    ]
    assert accounts.load(ACCOUNT).owner == "Ana"


def test_a_command_on_an_unknown_account_is_refused(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, bank_events)
    with pytest.raises(StreamNotFoundError):
        accounts.execute("acc-missing", lambda a: a.deposit("10.00"))
    assert store.read_all() == []


def test_the_example_script_tells_the_seed_story(capsys: pytest.CaptureFixture[str]) -> None:
    from cronica.examples import bank

    bank.main(["--store", "memory://"])
    out = capsys.readouterr().out
    assert "balance 500.00 at version 3" in out
    assert "as of version 2: balance 1000.00" in out
    assert "refused, nothing recorded" in out
