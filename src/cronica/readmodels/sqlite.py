"""Read models in SQLite: a file of their own, the event store's file, or memory.

One writer connection (transactions start with ``BEGIN IMMEDIATE``, which takes the write lock up
front, so a transaction never fails half-way on a lock upgrade) and a small pool of readers, in
WAL mode so queries run beside the projector. ``synchronous=NORMAL``: a power loss may undo the
last commits, but a commit carries the projection's writes and its checkpoint together, so the
read model rolls back to an earlier consistent point and the projector redoes the rest.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cronica.errors import ReadModelError, ReadModelUnavailableError
from cronica.readmodels.base import ReadModelDatabase, ReadModelTransaction, Row

log = logging.getLogger("cronica.readmodels")


_UNSTORABLE = (OverflowError, UnicodeEncodeError)
"""What sqlite3 raises for a parameter it cannot bind (an integer past 64 bits, a lone
surrogate), translated like the database's own errors."""


def _translate(exc: Exception) -> ReadModelError:
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
        return ReadModelUnavailableError(f"SQLite read models: {exc}")
    if isinstance(exc, _UNSTORABLE):
        return ReadModelError(f"SQLite read models: a parameter cannot be stored: {exc}")
    return ReadModelError(f"SQLite read models: {exc}")


class _SQLiteTransaction(ReadModelTransaction):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._savepoints = itertools.count(1)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._conn.execute(sql, params).rowcount
        except (sqlite3.Error, *_UNSTORABLE) as exc:
            raise _translate(exc) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except (sqlite3.Error, *_UNSTORABLE) as exc:
            raise _translate(exc) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except (sqlite3.Error, *_UNSTORABLE) as exc:
            raise _translate(exc) from exc

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        name = f"sp{next(self._savepoints)}"
        self._conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._conn.execute(f"ROLLBACK TO {name}")
            self._conn.execute(f"RELEASE {name}")
            raise
        self._conn.execute(f"RELEASE {name}")


class SQLiteReadModels(ReadModelDatabase):
    """Read models in the SQLite file at ``path`` (``":memory:"`` for a private scratch
    database, deleted on close).

    >>> db = SQLiteReadModels(":memory:")
    >>> db.table_exists("accounts")
    False
    >>> db.close()
    """

    dialect = "sqlite"
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, path: str, *, busy_timeout: float = 30.0) -> None:
        self._scratch: str | None = None
        if path == ":memory:":
            # A private file that goes away on close: an in-memory database shared between
            # connections would use shared-cache table locks, which do not wait (busy_timeout)
            # and would fail a query that meets the projector's transaction.
            self._scratch = tempfile.mkdtemp(prefix="cronica-read-models-")
            path = os.path.join(self._scratch, "read-models.db")
        self.path = path
        self.url = f"sqlite:///{path}"
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._target = path
        self._lock = threading.Lock()  # the writer connection: one transaction at a time
        self._open_lock = threading.Lock()  # the list of connections (not the writer's lock)
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._all: list[sqlite3.Connection] = []
        self._closed = False
        try:
            self._writer = self._open()
            self._use_wal(self._writer)
        except sqlite3.Error as exc:
            self.close()
            raise _translate(exc) from exc

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._target, isolation_level=None, check_same_thread=False, timeout=0
        )
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Deleted and overwritten rows are zeroed in the file, not left in free space: a read
        # model that drops a forgotten subject's personal data drops it from the disk too.
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA mmap_size = 268435456")
        with self._open_lock:
            if self._closed:
                conn.close()
                raise ReadModelError("the read-model database is closed")
            self._all.append(conn)
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs the file alone for a moment and SQLite does not wait for it.
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal":
                    return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
            if time.monotonic() > deadline:
                raise ReadModelError(f"SQLite read models: could not switch {self.path} to WAL")
            time.sleep(0.005)

    @contextmanager
    def transaction(self) -> Iterator[ReadModelTransaction]:
        with self._lock:
            if self._closed:
                raise ReadModelError("the read-model database is closed")
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
            try:
                yield _SQLiteTransaction(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise _translate(exc) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self._closed:
            raise ReadModelError("the read-model database is closed")
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            # Not under the writer's lock: a projector's batch holds that for its whole
            # transaction, and a query must not wait for it.
            try:
                conn = self._open()
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
        try:
            return conn.execute(sql, params).fetchall()
        except (sqlite3.Error, *_UNSTORABLE) as exc:
            raise _translate(exc) from exc
        finally:
            self._readers.put(conn)

    def table_exists(self, name: str) -> bool:
        rows = self.query(
            "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?", [name]
        )
        return bool(rows)

    def close(self) -> None:
        with self._lock, self._open_lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._all:
                conn.close()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)


def empty_wal(db: ReadModelDatabase, attempts: int = 20, wait: float = 0.25) -> bool:
    """Copy a SQLite database's write-ahead log into its file and empty it, so that what was
    deleted securely leaves no copy in the log; retried while readers hold the log, each try
    waiting at most ``wait`` seconds for them (about 5 s in all: a reader that stays longer
    must not hold up a forget for the database's whole busy timeout, 30 s, per try). False
    (and a warning) when it could not be done now: the log is emptied at a later checkpoint."""
    if not isinstance(db, SQLiteReadModels):
        return True
    try:
        conn = sqlite3.connect(db.path, isolation_level=None, timeout=0)
    except sqlite3.Error as exc:
        raise _translate(exc) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        for attempt in range(attempts):
            try:
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.OperationalError:  # "database is locked": a writer holds it
                busy = 1
            if not busy:
                return True
            time.sleep(0.005 * (attempt + 1))
    finally:
        conn.close()
    log.warning("the write-ahead log could not be emptied now: readers hold it")
    return False
