"""Telling other processes about commits on PostgreSQL: a notifier and a listener thread.

Why not ``NOTIFY`` inside the append transaction: a transaction that notified takes a global
lock at commit, which serialises every notifying commit of the cluster, and appends commit
concurrently (group commit, several writer connections). So a writer only hands its highest
committed position to the :class:`Notifier` of its store object, whose thread sends
``pg_notify(channel, position)`` on a connection of its own, in a transaction of its own (with
``synchronous_commit`` off: a notification needs no flush to disk). Commits coalesce: the first
commit after a quiet spell is notified at once; while a notification is in flight, and for
``NOTIFY_SPACING`` seconds after one was sent, further commits wait and go out together in the
next one. So a busy writer sends a few hundred notifications a second, not one per commit (each
is a transaction on the server, and cost appends a third of their rate when sent per commit).

The :class:`Listener` (one per store object, started by the first ``wait_for_events``) LISTENs
on the channel and advances the store's head watch by the position each notification carries.
Neither thread touches the database otherwise: no notification is lost for good (the waiters'
fallback poll reads the head position), so a connection that fails is closed and reopened later.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

Connect = Callable[[], "psycopg.Connection[Any]"]

NOTIFY_SPACING = 0.005
"""Least seconds from one notification to the next (the most a busy writer adds to a wake-up)."""

RETRY_DELAY = 1.0
"""Seconds before a failed notifier or listener connection is tried again."""

HEAD_SQL = "SELECT coalesce(max(position), 0) FROM events"
_MAX_CHANNEL = 63  # NAMEDATALEN - 1


def channel_name(schema: str) -> str:
    """The notification channel of a schema's events (at most 63 bytes, as PostgreSQL wants)."""
    name = f"cronica_events_{schema}"
    if len(name) <= _MAX_CHANNEL:
        return name
    digest = hashlib.sha256(schema.encode()).hexdigest()[:16]
    return f"cronica_events_{schema[: _MAX_CHANNEL - 32]}_{digest}"


class Notifier:
    """Sends a notification after commits, from a thread started on the first commit."""

    def __init__(
        self, connect: Connect, channel: str, name: str, spacing: float = NOTIFY_SPACING
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._name = name
        self._spacing = spacing
        self._cond = threading.Condition()
        self._pending: int | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        """Notifications sent so far."""

    def signal(self, position: int) -> None:
        """Ask for one notification carrying (at least) ``position``; returns at once."""
        with self._cond:
            if self._closed:
                return
            idle = self._pending is None  # else the thread will take this one with the other
            self._pend(position)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif idle:
                self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is pending (best effort), stop the thread and close its connection."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _pend(self, position: int) -> None:
        """Called with the condition held."""
        if self._pending is None or position > self._pending:
            self._pending = position

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        last = -math.inf
        try:
            while True:
                with self._cond:
                    while self._pending is None and not self._closed:
                        self._cond.wait()
                    if self._pending is None:
                        return
                    # Spacing: commits arriving meanwhile join this notification.
                    while not self._closed and (now := time.monotonic()) < last + self._spacing:
                        self._cond.wait(last + self._spacing - now)
                    position, self._pending = self._pending, None
                last = time.monotonic()
                try:
                    if conn is None:
                        conn = self._connect()
                    conn.execute("SELECT pg_notify(%s, %s)", (self._channel, str(position)))
                    self.sent += 1
                except Exception as exc:  # the thread must outlive any failure; waiters poll
                    logger.warning("cronica: could not notify %s: %s", self._channel, exc)
                    if conn is not None:
                        conn.close()
                        conn = None
                    with self._cond:
                        if self._closed:
                            return
                        self._pend(position)
                        self._cond.wait(RETRY_DELAY)
        finally:
            if conn is not None:
                conn.close()


class Listener:
    """LISTENs on the channel in a thread of its own and reports each position notified."""

    def __init__(
        self, connect: Connect, channel: str, on_head: Callable[[int], None], name: str
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._on_head = on_head
        self._name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._refresh = False  # a notification without a position came: read the head
        # A socket pair wakes the thread out of select() when the store closes.
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    def start(self, timeout: float) -> None:
        """Start the thread if it is not running; wait up to ``timeout`` seconds for its first
        LISTEN (or its failure), so that a commit after this returns is notified."""
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                self._wake_r, self._wake_w = socket.socketpair()
                self._wake_r.setblocking(False)
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self._ready.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and close its connection and sockets."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            thread = self._thread
            if self._wake_w is not None:
                with contextlib.suppress(OSError):
                    self._wake_w.send(b"x")
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():  # stuck on the network: leave the sockets to it
                return
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            conn: psycopg.Connection[Any] | None = None
            try:
                conn = self._connect()
                conn.add_notify_handler(self._on_notify)
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                # Listening now: what committed before is in the head position.
                self._read_head(conn)
                self._ready.set()
                self._listen(conn)
            except Exception as exc:  # the thread must outlive any failure; waiters poll
                if not self._stop.is_set():
                    logger.warning("cronica: listening on %s failed: %s", self._channel, exc)
            finally:
                self._ready.set()  # waiters go on with the fallback poll
                if conn is not None:
                    conn.close()
            if not self._stop.is_set():
                self._sleep(RETRY_DELAY)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        assert self._wake_r is not None
        pgconn = conn.pgconn
        fd = conn.fileno()
        wake = self._wake_r.fileno()
        while not self._stop.is_set():
            # Notifications libpq has read already (during a query, or the last read).
            while (notification := pgconn.notifies()) is not None:
                self._on_payload(notification.extra)
            if self._refresh:
                self._read_head(conn)
                continue
            readable, _, _ = select.select([fd, wake], [], [])
            if self._stop.is_set():
                return
            if fd in readable:
                pgconn.consume_input()  # raises OperationalError if the connection broke

    def _read_head(self, conn: psycopg.Connection[Any]) -> None:
        self._refresh = False
        row = conn.execute(HEAD_SQL).fetchone()
        if row is not None:
            self._on_head(int(row[0]))

    def _sleep(self, seconds: float) -> None:
        assert self._wake_r is not None
        select.select([self._wake_r], [], [], seconds)

    def _on_notify(self, notification: psycopg.Notify) -> None:
        self._on_payload(notification.payload.encode())

    def _on_payload(self, payload: bytes) -> None:
        try:
            position = int(payload)
        except ValueError:
            # Not one of ours (or no position): something committed, read the head.
            self._refresh = True
            return
        self._on_head(position)
