"""The seed's read models for the bank (1.4.3): accounts, transactions, active accounts.

- ``accounts``: one row per account (id, owner, balance, status, version).
- ``transactions``: one row per movement (deposit, withdrawal, transfer in or out), amount
  positive, with the event's id and time.
- ``active_accounts``: the accounts with a balance above zero (a view over its own table).

Amounts are kept as integer cents (``balance_cents``): exact in SQLite and PostgreSQL alike
(SQLite has no decimal type). :func:`money` turns them back into ``"1000.00"``.
"""

from __future__ import annotations

from decimal import Decimal

from cronica.events import RecordedEvent
from cronica.projections.base import Projection, ProjectionWriter, on

BANK_ACCOUNTS = frozenset({"BankAccount"})
"""The aggregate type whose events the bank's projections read."""

ERASED_OWNER = "[erased]"
"""The owner shown once an account holder's personal data is erased."""


def cents(value: object) -> int:
    """A decimal amount as stored in an event (``"12.30"``) in integer cents (1230).

    >>> cents("12.30"), cents("7"), cents("0.5")
    (1230, 700, 50)
    """
    if type(value) is str and len(value) > 3 and value[-3] == ".":
        # The bank's amounts are plain numbers with two places ("12.30"): the fast way.
        digits = value[:-3] + value[-2:]
        if digits.isdigit():
            return int(digits)
    return int(Decimal(str(value)).scaleb(2))


def money(value_cents: int) -> str:
    """Integer cents as a decimal string with two places: ``123`` -> ``"1.23"``."""
    return str(Decimal(value_cents).scaleb(-2).quantize(Decimal("0.01")))


class AccountsProjection(Projection):
    """``accounts``: id, owner, balance, status and version of every account."""

    name = "accounts"
    aggregate_types = BANK_ACCOUNTS
    tables = {
        "accounts": """
            CREATE TABLE {accounts} (
                account_id    TEXT PRIMARY KEY,
                owner         TEXT NOT NULL,
                balance_cents BIGINT NOT NULL,
                status        TEXT NOT NULL,
                version       INTEGER NOT NULL
            )""",
    }

    @on("AccountCreated")
    def created(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        db.insert(
            "accounts",
            {
                "account_id": event.aggregate_id,
                "owner": event.data["owner"],
                "balance_cents": 0,
                "status": "open",
                "version": event.version,
            },
        )

    @on("DepositMade", "TransferReceived", "TransferRefunded")
    def credited(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        self._move(db, event, cents(event.data["amount"]))

    @on("WithdrawalMade", "TransferSent")
    def debited(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        self._move(db, event, -cents(event.data["amount"]))

    @on("AccountClosed")
    def closed(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        key = ("account_id", event.aggregate_id)
        db.update("accounts", key, set={"status": "closed", "version": event.version})

    @on("PersonalDataErased")
    def erased(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        key = ("account_id", event.aggregate_id)
        db.update("accounts", key, set={"owner": ERASED_OWNER, "version": event.version})

    def _move(self, db: ProjectionWriter, event: RecordedEvent, delta: int) -> None:
        db.update(
            "accounts",
            ("account_id", event.aggregate_id),
            set={"version": event.version},
            add={"balance_cents": delta},
        )


_KINDS = {
    "DepositMade": ("deposit", "in"),
    "WithdrawalMade": ("withdrawal", "out"),
    "TransferSent": ("transfer", "out"),
    "TransferReceived": ("transfer", "in"),
    "TransferRefunded": ("transfer", "in"),
}


class TransactionsProjection(Projection):
    """``transactions``: every movement of money, by account, in log order."""

    name = "transactions"
    aggregate_types = BANK_ACCOUNTS
    tables = {
        "transactions": """
            CREATE TABLE {transactions} (
                position     BIGINT PRIMARY KEY,
                event_id     TEXT NOT NULL,
                account_id   TEXT NOT NULL,
                type         TEXT NOT NULL,
                direction    TEXT NOT NULL,
                amount_cents BIGINT NOT NULL,
                counterparty TEXT,
                timestamp    TEXT NOT NULL
            );
            CREATE INDEX {transactions}_by_account ON {transactions} (account_id, position)""",
    }

    @on(*_KINDS)
    def moved(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        kind, direction = _KINDS[event.event_type]
        data = event.data
        db.insert(
            "transactions",
            {
                "position": event.position,
                "event_id": str(event.event_id),
                "account_id": event.aggregate_id,
                "type": kind,
                "direction": direction,
                "amount_cents": cents(data["amount"]),
                "counterparty": data.get("to") or data.get("from"),
                "timestamp": event.timestamp.isoformat(),
            },
        )


class ActiveAccountsProjection(Projection):
    """``active_accounts``: open accounts whose balance is above zero (seed: "solo cuentas con
    saldo > 0"). Its table keeps every account's balance; the view shows the active ones."""

    name = "active_accounts"
    aggregate_types = BANK_ACCOUNTS
    tables = {
        "active_account_balances": """
            CREATE TABLE {active_account_balances} (
                account_id    TEXT PRIMARY KEY,
                owner         TEXT NOT NULL,
                balance_cents BIGINT NOT NULL
            );
            CREATE INDEX {active_account_balances}_positive
                ON {active_account_balances} (account_id) WHERE balance_cents > 0""",
    }
    views = {
        "active_accounts": "SELECT account_id, owner, balance_cents"
        " FROM {active_account_balances} WHERE balance_cents > 0",
    }

    @on("AccountCreated")
    def created(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        db.insert(
            "active_account_balances",
            {"account_id": event.aggregate_id, "owner": event.data["owner"], "balance_cents": 0},
        )

    @on("DepositMade", "TransferReceived", "TransferRefunded")
    def credited(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        key = ("account_id", event.aggregate_id)
        db.update(
            "active_account_balances", key, add={"balance_cents": cents(event.data["amount"])}
        )

    @on("WithdrawalMade", "TransferSent")
    def debited(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        key = ("account_id", event.aggregate_id)
        db.update(
            "active_account_balances", key, add={"balance_cents": -cents(event.data["amount"])}
        )

    @on("AccountClosed")
    def closed(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        db.write("DELETE FROM {active_account_balances} WHERE account_id = ?", [event.aggregate_id])

    @on("PersonalDataErased")
    def erased(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        key = ("account_id", event.aggregate_id)
        db.update("active_account_balances", key, set={"owner": ERASED_OWNER})


def bank_projections() -> list[Projection]:
    """The bank service's projections: ``accounts``, ``transactions``, ``active_accounts``."""
    return [AccountsProjection(), TransactionsProjection(), ActiveAccountsProjection()]
