"""The read-model database port: where projections keep their tables.

A read model is plain SQL tables in SQLite or PostgreSQL, the event store's database or another
one. Projections write through a :class:`ReadModelTransaction` and queries read through
:meth:`ReadModelDatabase.query`; both take SQL with ``?`` placeholders on every backend (the
PostgreSQL backend translates them), so a projection's SQL runs on either database as long as it
keeps to their common dialect (``INSERT ... ON CONFLICT``, ``TEXT``, ``BIGINT``, ...).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from cronica._closing import Closing

Row = tuple[Any, ...]


class ReadModelTransaction(abc.ABC):
    """One open transaction on a read-model database (see :meth:`ReadModelDatabase.transaction`)."""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed (-1 when not known)."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters, as fast as the driver allows."""

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query inside this transaction (it sees the transaction's own writes)."""

    def insert_rows(self, table: str, columns: Sequence[str], rows: list[Sequence[Any]]) -> None:
        """Insert ``rows`` (values in ``columns`` order) into ``table``, fast."""
        marks = ", ".join("?" * len(columns))
        self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def update_rows(
        self,
        table: str,
        key_column: str,
        set_columns: Sequence[str],
        add_columns: Sequence[str],
        rows: list[Sequence[Any]],
    ) -> None:
        """For each row ``(key, *set_values, *add_values)``: set and add to the columns of the
        row of ``table`` whose ``key_column`` is ``key``. Keys are distinct."""
        changes = [f"{c} = ?" for c in set_columns] + [f"{c} = {c} + ?" for c in add_columns]
        sql = f"UPDATE {table} SET {', '.join(changes)} WHERE {key_column} = ?"
        self.executemany(sql, [(*row[1:], row[0]) for row in rows])

    @abc.abstractmethod
    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: an exception inside rolls back to its start and propagates."""


class ReadModelDatabase(Closing, abc.ABC):
    """A SQL database holding read models, with one writer at a time and many readers.

    >>> from cronica.readmodels import connect_read_models
    >>> db = connect_read_models("memory://")
    >>> with db.transaction() as tx:
    ...     _ = tx.execute("CREATE TABLE t (x INTEGER)")
    ...     _ = tx.execute("INSERT INTO t VALUES (?)", [1])
    >>> db.query("SELECT x FROM t")
    [(1,)]
    >>> db.close()
    """

    dialect: ClassVar[str] = "abstract"
    now_sql: ClassVar[str] = ""
    """A SQL expression for the database server's clock in seconds since the epoch (leases)."""

    url: str
    """The URL this database was opened with (without credentials on PostgreSQL)."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[ReadModelTransaction]:
        """Open a write transaction: committed when the block exits cleanly, rolled back when it
        raises. Transactions of one database object run one at a time (they queue)."""

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a read in a short transaction of its own; safe to call from any thread."""

    @abc.abstractmethod
    def table_exists(self, name: str) -> bool:
        """Whether a table or view of that name exists (in this database's schema)."""

    def close(self) -> None:
        """Close every connection; the object cannot be used afterwards."""


def rows_of(cursor_rows: Iterator[Row] | list[Row]) -> list[Row]:
    """Rows as plain tuples (drivers may hand out their own row types)."""
    return [tuple(row) for row in cursor_rows]
