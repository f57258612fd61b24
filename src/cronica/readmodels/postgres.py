"""Read models in PostgreSQL: the event store's database or another one, in a schema of choice.

The writer connection runs with ``synchronous_commit=off``: a crash of the server may undo the
last commits, but each commit carries a projection's writes together with its checkpoint, so the
read model falls back to an earlier consistent point and the projector redoes the rest. Queries
use a pool of their own. Projections write SQL with ``?`` placeholders; they are translated to
psycopg's ``%s`` once per statement text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from typing import Any

import psycopg
import psycopg_pool

from cronica._postgres import pooled_read
from cronica.errors import InvalidURLError, ReadModelError, ReadModelUnavailableError
from cronica.readmodels.base import ReadModelDatabase, ReadModelTransaction, Row

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # lower case: see cronica.store.postgres
# A quoted string or identifier, a lone '?', or a lone '%': only the last two are rewritten.
_REWRITES = {"?": "%s", "%": "%%"}
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")


@lru_cache(maxsize=1024)
def to_psycopg(sql: str) -> str:
    """``?`` placeholders to ``%s`` (and a literal ``%`` to ``%%``), outside quoted text."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        return _REWRITES.get(text, text)

    return _TOKENS.sub(replace, sql)


def _translate(exc: Exception) -> ReadModelError:
    if isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout):
        return ReadModelUnavailableError(f"PostgreSQL read models: {exc}")
    if isinstance(exc, UnicodeEncodeError):  # a lone surrogate has no UTF-8 form to send
        return ReadModelError(f"PostgreSQL read models: a parameter cannot be stored: {exc}")
    return ReadModelError(f"PostgreSQL read models: {exc}")


_FEW = 8
"""Below this many rows, plain statements beat COPY and unnest."""


def _array_param(values: Sequence[Any]) -> Any:
    """A column of an ``unnest`` update: as an array literal when it holds only text, integers
    and nulls (several times cheaper than psycopg adapting the list item by item), else the
    list for psycopg to adapt."""
    parts: list[str] = []
    for value in values:
        kind = type(value)
        if kind is int:
            parts.append(str(value))
        elif kind is str:
            parts.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif value is None:
            parts.append("NULL")
        else:
            return list(values)
    return "{" + ",".join(parts) + "}"


class _PostgresTransaction(ReadModelTransaction):
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._types: dict[str, dict[str, str]] = {}

    def insert_rows(self, table: str, columns: Sequence[str], rows: list[Sequence[Any]]) -> None:
        if len(rows) < _FEW:
            super().insert_rows(table, columns, rows)
            return
        try:
            with (
                self._conn.cursor() as cursor,
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    def update_rows(
        self,
        table: str,
        key_column: str,
        set_columns: Sequence[str],
        add_columns: Sequence[str],
        rows: list[Sequence[Any]],
    ) -> None:
        if len(rows) < _FEW:
            super().update_rows(table, key_column, set_columns, add_columns, rows)
            return
        # One statement for the whole batch: the rows travel as one array per column.
        types = self._column_types(table)
        columns = [key_column, *set_columns, *add_columns]
        arrays = ", ".join(f"%s::{types[column]}[]" for column in columns)
        names = ", ".join(f"v{i}" for i in range(len(columns)))
        changes = [f"{c} = v.v{i}" for i, c in enumerate(set_columns, 1)]
        changes += [
            f"{c} = {table}.{c} + v.v{i}" for i, c in enumerate(add_columns, 1 + len(set_columns))
        ]
        sql = (
            f"UPDATE {table} SET {', '.join(changes)} FROM unnest({arrays}) AS v({names})"
            f" WHERE {table}.{key_column} = v.v0"
        )
        params = [_array_param(column) for column in zip(*rows, strict=True)]
        try:
            self._conn.execute(sql, params)
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    def _column_types(self, table: str) -> dict[str, str]:
        types = self._types.get(table)
        if types is None:
            rows = self.query(
                # The base type (varchar, not varchar(20)): a cast to varchar(20) would cut
                # longer text silently, where an UPDATE of the column refuses it.
                "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute"
                " WHERE attrelid = ?::regclass AND attnum > 0 AND NOT attisdropped",
                [table],
            )
            types = self._types[table] = dict(rows)
        return types

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._conn.execute(to_psycopg(sql), params).rowcount
        except (psycopg.Error, UnicodeEncodeError) as exc:
            raise _translate(exc) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            with self._conn.cursor() as cursor:
                cursor.executemany(to_psycopg(sql), rows)
        except (psycopg.Error, UnicodeEncodeError) as exc:
            raise _translate(exc) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._conn.execute(to_psycopg(sql), params).fetchall()
        except (psycopg.Error, UnicodeEncodeError) as exc:
            raise _translate(exc) from exc

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        try:
            with self._conn.transaction():
                yield
        except psycopg.Error as exc:
            raise _translate(exc) from exc


class PostgresReadModels(ReadModelDatabase):
    """Read models in the PostgreSQL database ``conninfo``, in ``schema`` (created if missing)."""

    dialect = "postgresql"
    now_sql = "extract(epoch from clock_timestamp())::float8"

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "public",
        pool_size: int = 4,
        connect_timeout: float = 10.0,
    ) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidURLError(f"schema must be a lower-case identifier, not {schema!r}")
        self.schema = schema
        self.url = f"postgresql://{conninfo.split('@')[-1]}?schema={schema}"
        self._conninfo = conninfo
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "options": f"-c search_path={schema} -c TimeZone=UTC -c synchronous_commit=off",
            "connect_timeout": max(1, int(connect_timeout)),
        }
        self._lock = threading.Lock()
        self._closed = False
        self._writer: psycopg.Connection[Any] | None = None
        try:
            with psycopg.connect(conninfo, **self._kwargs) as conn:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        except psycopg.Error as exc:
            raise _translate(exc) from exc
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = (
            psycopg_pool.ConnectionPool(
                conninfo,
                min_size=1,
                max_size=pool_size,
                kwargs=self._kwargs,
                timeout=connect_timeout,
                open=True,
            )
        )

    def _writer_connection(self) -> psycopg.Connection[Any]:
        if self._writer is None or self._writer.closed or self._writer.broken:
            if self._writer is not None:
                self._writer.close()
            self._writer = psycopg.connect(self._conninfo, **self._kwargs)
        return self._writer

    @contextmanager
    def transaction(self) -> Iterator[ReadModelTransaction]:
        with self._lock:
            if self._closed:
                raise ReadModelError("the read-model database is closed")
            try:
                conn = self._writer_connection()
                block = conn.transaction()
                block.__enter__()
            except psycopg.Error as exc:
                raise _translate(exc) from exc
            try:
                yield _PostgresTransaction(conn)
            except BaseException as exc:
                # If the connection broke, the transaction is gone with it.
                with suppress(psycopg.Error):
                    block.__exit__(type(exc), exc, exc.__traceback__)
                raise
            try:
                block.__exit__(None, None, None)
            except psycopg.Error as exc:
                raise _translate(exc) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self._closed:
            raise ReadModelError("the read-model database is closed")
        try:
            return pooled_read(self._pool, to_psycopg(sql), params)
        except (psycopg.Error, psycopg_pool.PoolTimeout, UnicodeEncodeError) as exc:
            raise _translate(exc) from exc

    def table_exists(self, name: str) -> bool:
        rows = self.query(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [self.schema, name],
        )
        return bool(rows)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._writer is not None:
                self._writer.close()
        self._pool.close()
