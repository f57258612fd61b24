"""Tables of a projection's generations, and the public views that point at one of them.

A generation filled from zero (a new projection's first, or a rebuild's) is created without its
secondary indexes (plain ``CREATE INDEX``; unique indexes, which are constraints, come at once):
loading a million rows and then indexing them is several times faster than keeping an index up
to date row by row. The projector adds them (:func:`create_deferred_indexes`) as soon as the
generation has caught up with the log, before a rebuilt generation goes live.
"""

from __future__ import annotations

import re

from cronica.projections.base import Projection, physical_name
from cronica.readmodels.base import ReadModelTransaction

# A plain index with a name (an unnamed one, "CREATE INDEX ON t (c)", cannot take IF NOT
# EXISTS, so it is created with its table).
_PLAIN_INDEX = re.compile(
    r"\s*CREATE\s+INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(?!ON\b)(?=\S)", re.IGNORECASE
)


def table_names(projection: Projection, generation: int) -> dict[str, str]:
    """Logical table name -> the table holding it in ``generation``."""
    return {table: physical_name(table, generation) for table in projection.tables}


def ddl_statements(projection: Projection, generation: int) -> tuple[list[str], list[str]]:
    """The generation's DDL, split into what creates it and the secondary indexes that may wait
    (``CREATE INDEX IF NOT EXISTS ...``; none when the projection sets ``defer_indexes`` off)."""
    names = table_names(projection, generation)
    now: list[str] = []
    deferred: list[str] = []
    for ddl in projection.tables.values():
        for statement in ddl.format_map(names).split(";"):
            if not statement.strip():
                continue
            plain = _PLAIN_INDEX.match(statement)
            if plain and projection.defer_indexes:
                deferred.append("CREATE INDEX IF NOT EXISTS " + statement[plain.end() :])
            else:
                now.append(statement)
    return now, deferred


def create_generation(
    tx: ReadModelTransaction, projection: Projection, generation: int, *, defer_indexes: bool
) -> None:
    """Create the (empty) tables of a generation, replacing leftovers of an earlier attempt;
    with ``defer_indexes``, without the secondary indexes (see the module docstring)."""
    drop_generation(tx, projection, generation)
    now, deferred = ddl_statements(projection, generation)
    for statement in now if defer_indexes else [*now, *deferred]:
        tx.execute(statement)


def create_deferred_indexes(
    tx: ReadModelTransaction, projection: Projection, generation: int
) -> None:
    """Create the generation's secondary indexes that do not exist yet."""
    for statement in ddl_statements(projection, generation)[1]:
        tx.execute(statement)


def drop_generation(tx: ReadModelTransaction, projection: Projection, generation: int) -> None:
    for name in table_names(projection, generation).values():
        tx.execute(f"DROP TABLE IF EXISTS {name}")


def point_views(tx: ReadModelTransaction, projection: Projection, generation: int) -> None:
    """Point the projection's public views at ``generation`` (in the caller's transaction, so
    queries see the old generation or the new one, never a gap)."""
    names = table_names(projection, generation)
    for view, select in projection.public_views().items():
        tx.execute(f"DROP VIEW IF EXISTS {view}")
        tx.execute(f"CREATE VIEW {view} AS {select.format_map(names)}")
