"""Fresh places to benchmark in: a new SQLite file or PostgreSQL schema, removed afterwards."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from storebench.subjects import BackendName

_counter = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Site:
    """Where one implementation runs one workload: nothing else ever uses it."""

    backend: BackendName
    sqlite_path: Path | None = None
    conninfo: str = ""
    schema: str = ""


class SiteFactory:
    """Hands out fresh sites and removes each one when its block ends.

    SQLite files go to a private directory under ``tmp_root`` (on a real disk: fsync must cost
    what it costs users); PostgreSQL schemas are named ``cronbench_<pid>_<n>_<label>``.
    """

    def __init__(self, conninfo: str, tmp_root: Path | None) -> None:
        self.conninfo = conninfo
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="cronbench-", dir=tmp_root))

    @contextlib.contextmanager
    def fresh(self, backend: BackendName, label: str) -> Iterator[Site]:
        """A new empty site; dropped (schema) or deleted (files) afterwards, even on error."""
        name = f"cronbench_{os.getpid()}_{next(_counter)}_{label}".lower()
        if backend == "sqlite":
            path = self.tmp_dir / f"{name}.db"
            try:
                yield Site(backend, sqlite_path=path)
            finally:
                _remove_sqlite_files(path)
        else:
            _create_schema(self.conninfo, name)
            try:
                yield Site(backend, conninfo=self.conninfo, schema=name)
            finally:
                _drop_schema(self.conninfo, name)

    def close(self) -> None:
        """Remove the private directory of SQLite files."""
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _create_schema(conninfo: str, schema: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def _drop_schema(conninfo: str, schema: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
