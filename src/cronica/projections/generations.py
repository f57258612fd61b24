"""Tables of a projection's generations, and the public views that point at one of them."""

from __future__ import annotations

from cronica.projections.base import Projection, physical_name
from cronica.readmodels.base import ReadModelTransaction


def table_names(projection: Projection, generation: int) -> dict[str, str]:
    """Logical table name -> the table holding it in ``generation``."""
    return {table: physical_name(table, generation) for table in projection.tables}


def create_generation(tx: ReadModelTransaction, projection: Projection, generation: int) -> None:
    """Create the (empty) tables of a generation, replacing leftovers of an earlier attempt."""
    names = table_names(projection, generation)
    drop_generation(tx, projection, generation)
    for ddl in projection.tables.values():
        for statement in ddl.format_map(names).split(";"):
            if statement.strip():
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
