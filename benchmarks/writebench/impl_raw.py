"""The ideal baseline: the command round trip in hand-written SQL, no library in between.

It uses the event store benchmark's raw table (``storebench.impl_raw``: cronica's columns and
keys, no other index) and its connections (SQLite: WAL, ``synchronous=FULL``; PostgreSQL:
autocommit). A command is one ``SELECT event_type, event_data ... ORDER BY event_version`` of
the account's stream, a fold over the rows (JSON parsed with orjson, amounts summed as
``Decimal``), the same amount check as the other implementations, and one ``INSERT`` of the new
event at the next version: the unique key ``(aggregate_id, event_version)`` is the concurrency
check. Only the columns the fold needs are read and decoded, which is what makes it ideal.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import psycopg

from storebench.impl_raw import _PG_SCHEMA, _SQLITE_SCHEMA, open_postgres, open_sqlite
from storebench.sites import Site
from writebench.common import COMMAND_AMOUNT, INITIAL_AMOUNT, OWNER, WriteModelSizes, amount

AGGREGATE_TYPE = "BankAccount"
_METADATA = orjson.dumps({}).decode()


def _fold(rows: list[tuple[str, Any]], parse: bool) -> tuple[Decimal, bool]:
    """The account's balance and whether it is closed, from its (event_type, data) rows."""
    balance, closed = Decimal("0.00"), False
    for event_type, raw in rows:
        data = orjson.loads(raw) if parse else raw
        if event_type in ("DepositMade", "TransferReceived"):
            balance += Decimal(data["amount"])
        elif event_type in ("WithdrawalMade", "TransferSent"):
            balance -= Decimal(data["amount"])
        elif event_type == "AccountClosed":
            closed = True
    return balance, closed


def _initial(account_id: str, count: int) -> list[tuple[Any, ...]]:
    created = orjson.dumps({"owner": OWNER}).decode()
    deposit = orjson.dumps({"amount": str(INITIAL_AMOUNT)}).decode()
    return [
        (
            str(uuid.uuid4()),
            account_id,
            "AccountCreated" if version == 1 else "DepositMade",
            version,
            created if version == 1 else deposit,
        )
        for version in range(1, count + 1)
    ]


class RawSQLiteCommands:
    """One connection; read the stream, fold, check, insert one row (autocommit)."""

    _SELECT = (
        "SELECT event_type, event_data FROM events WHERE aggregate_id = ? ORDER BY event_version"
    )
    _INSERT = (
        "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, event_version,"
        " event_data, metadata, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )

    def __init__(self, site: Site, sizes: WriteModelSizes) -> None:
        assert site.sqlite_path is not None
        self.conn: sqlite3.Connection = open_sqlite(site.sqlite_path)
        for statement in _SQLITE_SCHEMA:
            self.conn.execute(statement)
        self.ids = [f"acc-{n}" for n in range(sizes.accounts)]
        stamp = datetime.now(UTC).isoformat(timespec="microseconds")
        for account_id in self.ids:
            rows = [
                (event_id, aggregate_id, AGGREGATE_TYPE, kind, version, data, _METADATA, stamp)
                for event_id, aggregate_id, kind, version, data in _initial(
                    account_id, sizes.initial_events
                )
            ]
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(self._INSERT, rows)
            self.conn.execute("COMMIT")
        self._next = 0

    def command(self) -> None:
        account_id = self.ids[self._next]
        self._next = (self._next + 1) % len(self.ids)
        rows = self.conn.execute(self._SELECT, (account_id,)).fetchall()
        _, closed = _fold(rows, parse=True)
        money = amount(COMMAND_AMOUNT)
        if closed:
            raise ValueError(f"account {account_id} is closed")
        self.conn.execute(
            self._INSERT,
            (
                str(uuid.uuid4()),
                account_id,
                AGGREGATE_TYPE,
                "DepositMade",
                len(rows) + 1,
                orjson.dumps({"amount": str(money)}).decode(),
                _METADATA,
                datetime.now(UTC).isoformat(timespec="microseconds"),
            ),
        )

    def total_balance(self) -> Decimal:
        total = Decimal(0)
        for account_id in self.ids:
            rows = self.conn.execute(self._SELECT, (account_id,)).fetchall()
            total += _fold(rows, parse=True)[0]
        return total

    def close(self) -> None:
        self.conn.close()


class RawPostgresCommands:
    """One autocommit connection; read the stream (JSONB parsed by orjson), fold, insert."""

    _SELECT = (
        "SELECT event_type, event_data FROM events WHERE aggregate_id = %s ORDER BY event_version"
    )
    _INSERT = (
        "INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, event_version,"
        " event_data, metadata) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)"
    )

    def __init__(self, site: Site, sizes: WriteModelSizes) -> None:
        self.conn: psycopg.Connection[Any] = open_postgres(site)
        self.conn.execute(_PG_SCHEMA)
        self.ids = [f"acc-{n}" for n in range(sizes.accounts)]
        for account_id in self.ids:
            rows = [
                (uuid.UUID(event_id), aggregate_id, AGGREGATE_TYPE, kind, version, data, _METADATA)
                for event_id, aggregate_id, kind, version, data in _initial(
                    account_id, sizes.initial_events
                )
            ]
            with self.conn.transaction(), self.conn.cursor() as cursor:
                cursor.executemany(self._INSERT, rows)
        self._next = 0

    def command(self) -> None:
        account_id = self.ids[self._next]
        self._next = (self._next + 1) % len(self.ids)
        rows = self.conn.execute(self._SELECT, (account_id,)).fetchall()
        _, closed = _fold(rows, parse=False)
        money = amount(COMMAND_AMOUNT)
        if closed:
            raise ValueError(f"account {account_id} is closed")
        self.conn.execute(
            self._INSERT,
            (
                uuid.uuid4(),
                account_id,
                AGGREGATE_TYPE,
                "DepositMade",
                len(rows) + 1,
                orjson.dumps({"amount": str(money)}).decode(),
                _METADATA,
            ),
        )

    def total_balance(self) -> Decimal:
        total = Decimal(0)
        for account_id in self.ids:
            rows = self.conn.execute(self._SELECT, (account_id,)).fetchall()
            total += _fold(rows, parse=False)[0]
        return total

    def close(self) -> None:
        self.conn.close()
