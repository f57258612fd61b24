"""What projection handlers write through: SQL with ``{table}`` names, and queued writes.

Handlers may run SQL directly (:meth:`ProjectionWriter.execute`), or queue their writes so the
projector sends many at once:

- :meth:`~ProjectionWriter.write` queues a statement; consecutive writes of the same statement
  go out as one ``executemany``.
- :meth:`~ProjectionWriter.insert` queues a row; consecutive inserts into one table go out
  together (``COPY`` on PostgreSQL).
- :meth:`~ProjectionWriter.update` queues a change to the row with a given key, setting some
  columns and adding to others. Consecutive updates of one table are merged per key and go out
  as one statement (PostgreSQL: ``UPDATE ... FROM unnest(...)``).

Only *consecutive* operations of the same kind on the same target are merged, and everything
queued is sent before any other statement, any query and the end of the batch: the effects
happen in the order the handlers asked for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cronica.errors import InvalidInputError
from cronica.readmodels.base import ReadModelTransaction, Row


class _Run:
    """Queued operations of one kind on one target, sent together."""

    __slots__ = ("key_column", "kind", "merged", "rows", "shape", "target")

    def __init__(
        self, kind: str, target: str, shape: tuple[Any, ...], key_column: str = ""
    ) -> None:
        self.kind = kind
        self.target = target
        self.shape = shape
        self.key_column = key_column
        self.rows: list[Sequence[Any]] = []
        self.merged: dict[Any, tuple[list[Any], list[Any]]] = {}


class ProjectionWriter:
    """The open transaction, with ``{table}`` names resolved to the generation being written."""

    __slots__ = ("_names", "_run", "_sql", "_tx")

    def __init__(self, tx: ReadModelTransaction, names: Mapping[str, str]) -> None:
        self._tx = tx
        self._names = names
        self._sql: dict[str, str] = {}
        self._run: _Run | None = None

    def sql(self, text: str) -> str:
        """``text`` with its ``{table}`` placeholders filled in."""
        resolved = self._sql.get(text)
        if resolved is None:
            resolved = self._sql[text] = text.format_map(self._names)
        return resolved

    def table(self, name: str) -> str:
        """The table that holds ``name`` in the generation being written."""
        try:
            return self._names[name]
        except KeyError:
            raise InvalidInputError(f"the projection has no table {name!r}") from None

    # -- queued writes ---------------------------------------------------------------------------

    def write(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Queue one statement; consecutive writes of the same statement go out together."""
        run = self._run
        if run is None or run.kind != "sql" or (run.target is not sql and run.target != sql):
            run = self._start("sql", sql, ())
        run.rows.append(params)

    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        """Queue a new row of ``table`` (column -> value)."""
        columns = tuple(row)
        run = self._run
        if run is None or run.kind != "insert" or run.target != table or run.shape != columns:
            run = self._start("insert", table, columns)
        run.rows.append(tuple(row.values()))

    def update(
        self,
        table: str,
        key: tuple[str, Any],
        *,
        set: Mapping[str, Any] | None = None,
        add: Mapping[str, int] | None = None,
    ) -> None:
        """Queue a change to the row of ``table`` whose ``key[0]`` column is ``key[1]``: the
        ``set`` columns take their values, the ``add`` columns grow by theirs. A row that does
        not exist is left alone, as by ``UPDATE``."""
        sets = set or {}
        adds = add or {}
        shape = (key[0], tuple(sets), tuple(adds))
        run = self._run
        if run is None or run.kind != "update" or run.target != table or run.shape != shape:
            run = self._start("update", table, shape, key[0])
        known = run.merged.get(key[1])
        if known is None:
            run.merged[key[1]] = (list(sets.values()), list(adds.values()))
            return
        known_sets, known_adds = known
        known_sets[:] = sets.values()
        for i, value in enumerate(adds.values()):
            known_adds[i] += value

    def _start(self, kind: str, target: str, shape: tuple[Any, ...], key_column: str = "") -> _Run:
        self.flush()
        run = self._run = _Run(kind, target, shape, key_column)
        return run

    def flush(self) -> None:
        """Send what is queued (the projector also calls it at the end of each batch)."""
        run, self._run = self._run, None
        if run is None:
            return
        if run.kind == "sql":
            if len(run.rows) == 1:
                self._tx.execute(self.sql(run.target), run.rows[0])
            else:
                self._tx.executemany(self.sql(run.target), run.rows)
        elif run.kind == "insert":
            self._tx.insert_rows(self.table(run.target), run.shape, run.rows)
        else:
            _, set_columns, add_columns = run.shape
            rows: list[Sequence[Any]] = [
                (k, *sets, *adds) for k, (sets, adds) in run.merged.items()
            ]
            self._tx.update_rows(
                self.table(run.target), run.key_column, set_columns, add_columns, rows
            )

    def discard(self) -> None:
        """Drop what is queued (when the transaction or savepoint is rolled back)."""
        self._run = None

    # -- direct statements ---------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement now; return the number of rows it changed."""
        self.flush()
        return self._tx.execute(self.sql(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""
        self.flush()
        self._tx.executemany(self.sql(sql), rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Read inside the transaction (sees this batch's writes)."""
        self.flush()
        return self._tx.query(self.sql(sql), params)
