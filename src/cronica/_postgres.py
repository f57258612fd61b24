"""PostgreSQL helpers shared by the event store and the read models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg_pool


def pooled_read(
    pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]], query: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """Run a read on a pooled connection and fetch every row. A read is safe to repeat: a
    pooled connection found broken (the server restarted, an administrator ended it) is
    dropped by the pool, and the read tries the next one. Raises psycopg's errors."""
    attempts = pool.max_size + 1
    for attempt in range(1, attempts + 1):
        with pool.connection() as conn:
            try:
                return conn.execute(query, params).fetchall()
            except psycopg.OperationalError:
                if not conn.broken or attempt == attempts:
                    raise
    raise AssertionError("unreachable: the last attempt returns or raises")
