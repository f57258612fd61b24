"""What telling other processes about commits costs appends on PostgreSQL.

    python benchmarks/bench_notify.py [--seconds 20] [--slice 0.5] [--spacing 0.005]

One store appends while its notifier (the thread that sends ``NOTIFY`` after commits, see
``cronica/store/_pg_wakeups.py``) is switched off and on every ``--slice`` seconds; the figure
is the median rate of each mode's slices, so both modes see the same machine noise. Workloads:
A, one writer, one event per append; B8, eight writer threads sharing the store (group
commit). ``--spacing`` sets the least time between two notifications (0: one per commit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import psycopg

from cronica import NewEvent
from cronica.store.postgres import PostgresEventStore

POSTGRES = os.environ.get("CRONICA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
DATA = {"amount": "10.00"}


def measure(
    store: PostgresEventStore, writers: int, seconds: float, slice_seconds: float
) -> tuple[float, float]:
    """Median events/s with the notifier off, and on."""
    counts = [0] * writers
    stop = threading.Event()

    def write(slot: int) -> None:
        stream, version = f"w{writers}-{slot}-{time.monotonic_ns()}", 0
        while not stop.is_set():
            version = store.append(stream, [NewEvent("DepositMade", DATA)], version).to_version
            counts[slot] += 1

    threads = [threading.Thread(target=write, args=(slot,)) for slot in range(writers)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # warm up
    rates: dict[bool, list[float]] = {False: [], True: []}
    notify = False
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        store._notify_commits = notify
        time.sleep(0.05)  # let the switch settle, uncounted
        started, before = time.monotonic(), sum(counts)
        time.sleep(slice_seconds)
        rates[notify].append((sum(counts) - before) / (time.monotonic() - started))
        notify = not notify
    stop.set()
    for thread in threads:
        thread.join()
    store._notify_commits = True
    return statistics.median(rates[False]), statistics.median(rates[True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--slice", type=float, default=0.5)
    parser.add_argument("--spacing", type=float, default=None)
    args = parser.parse_args()
    schema = f"cronbench_notify_{os.getpid()}"
    store = PostgresEventStore(POSTGRES, schema=schema)
    if args.spacing is not None:
        store._notifier._spacing = args.spacing
    try:
        for name, writers in (("A", 1), ("B8", 8)):
            sent = store._notifier.sent
            off, on = measure(store, writers, args.seconds, args.slice)
            print(
                f"{name:<3} notifier off {off:7.0f} ev/s, on {on:7.0f} ev/s, on/off {on / off:.3f}"
                f" ({store._notifier.sent - sent} notifications)",
                flush=True,
            )
    finally:
        store.close()
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
