"""A loop that runs in a daemon thread until stopped: the shape the relay and the in-process
consumers share."""

from __future__ import annotations

import abc
import threading
import time
from typing import Self

from cronica._closing import Closing
from cronica.store.base import EventStore


def join_waking(thread: threading.Thread, store: EventStore | None, timeout: float) -> None:
    """Join ``thread``, which may be blocked in ``store.wait_for_events`` or about to be: wake
    its store's waiters until it has gone (or ``timeout`` seconds have passed)."""
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        if store is not None:
            store.interrupt_waiters()
        thread.join(0.05)


class BackgroundLoop(Closing, abc.ABC):
    """``run_forever`` in a thread (:meth:`start`) until :meth:`stop`; a context manager whose
    exit calls :meth:`close`. A loop that waits for new events on ``store`` is woken by
    :meth:`stop`; others should wait in short slices."""

    store: EventStore | None = None
    thread_name = "cronica-loop"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def run_forever(self) -> None:
        """Work until ``self._stopping`` is set."""

    def start(self) -> Self:
        """Run in a background thread (a daemon) until :meth:`stop`."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self.run_forever, name=self.thread_name, daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread (after the work in hand)."""
        self._stopping.set()
        if self._thread is not None:
            join_waking(self._thread, self.store, timeout)
            self._thread = None

    def close(self) -> None:
        """Stop, then release what this object opened."""
        self.stop()
        self._release()

    def _release(self) -> None:
        """What :meth:`close` releases after stopping (nothing by default)."""
