"""Benchmark cronica's read side: rebuilding projections, and lag under steady load.

    python benchmarks/bench_read_side.py [--backend sqlite|postgresql|all] [--runs 3]
                                         [--quick] [--json PATH]

Two workloads on each SQL backend:

- **rebuild**: the bank's three projections (``accounts``, ``transactions``,
  ``active_accounts``) built from zero from a log of 1,000,000 events (100,000 with --quick):
  10,000 accounts opened, then deposits, withdrawals and transfers at random accounts,
  interleaved as real traffic is. Beside it, in the same run, the rates of reading that log
  through ``EventStore.read_all`` (what any projector must do) and through raw SQL (driver and
  JSON decoding only). Each rebuild writes into a fresh read-model database (a new SQLite file,
  a new PostgreSQL schema); the three take turns, the order rotating from run to run.
- **lag**: the store's sustained write rate (4 threads, one event per append) is measured
  first; then events are appended at half that rate for 10 s (3 s with --quick) while a
  projector runs in its own process (``cronica projections run``), and each event's lag is the
  time from its append returning to all three read models having reached its position (their
  checkpoints, polled every millisecond). Reported as p50 and p99.

Figures are medians of ``--runs`` runs. ``bash benchmarks/run.sh read-side`` runs this in
``.venv-bench``.
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import json
import os
import pstats
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

import cronica
from cronica import NewEvent, RecordedEvent
from cronica.examples.bank_read_models import bank_projections
from cronica.projections import Projector
from cronica.readmodels import connect_read_models
from cronica.store.base import CopyProgress
from storebench import environment
from storebench.impl_raw import open_sqlite
from storebench.sites import Site, SiteFactory

POSTGRES = os.environ.get("CRONICA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
FULL = {"events": 1_000_000, "accounts": 10_000, "lag_seconds": 10.0}
QUICK = {"events": 100_000, "accounts": 1_000, "lag_seconds": 3.0}
BATCH = 1000
BANK_ACCOUNT = "BankAccount"
"""The aggregate type the bank's projections read (they pass over other streams' events)."""


def store_url(site: Site) -> str:
    if site.backend == "sqlite":
        return f"sqlite:///{site.sqlite_path}"
    return f"{site.conninfo}?schema={site.schema}"


# -- the log ------------------------------------------------------------------------------------


def bank_log(total: int, accounts: int, seed: int = 1) -> Iterator[list[RecordedEvent]]:
    """``total`` bank events in batches: every account opened, then movements at random
    accounts (a transfer is two events, on two streams)."""
    rng = random.Random(seed)
    ids = [f"acc-{i:06d}" for i in range(accounts)]
    versions = dict.fromkeys(ids, 0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made = 0
    batch: list[RecordedEvent] = []

    def event(account: str, kind: str, data: dict[str, Any]) -> None:
        nonlocal made
        versions[account] += 1
        made += 1
        batch.append(
            RecordedEvent(
                uuid.uuid4(), kind, account, BANK_ACCOUNT, versions[account], made,
                start + timedelta(milliseconds=made), data, {"actor": "bench"},
            )
        )  # fmt: skip

    for account in ids:
        event(account, "AccountCreated", {"owner": f"Owner {account}"})
    while made < total:
        if len(batch) >= 5000:
            yield batch
            batch = []
        account = rng.choice(ids)
        amount = f"{rng.randint(1, 900)}.{rng.randint(0, 99):02d}"
        roll = rng.random()
        if roll < 0.55:
            event(account, "DepositMade", {"amount": amount})
        elif roll < 0.85:
            event(account, "WithdrawalMade", {"amount": amount})
        else:
            other = rng.choice(ids)
            transfer = uuid.uuid4().hex
            event(account, "TransferSent", {"transferId": transfer, "to": other, "amount": amount})
            event(
                other,
                "TransferReceived",
                {"transferId": transfer, "from": account, "amount": amount},
            )
    if batch:
        yield batch


def fill(store: cronica.EventStore, total: int, accounts: int) -> int:
    written = 0
    for batch in bank_log(total, accounts):
        written += len(batch)
        store.import_events(batch, CopyProgress("bench", written, written, written, ""))
    return written


# -- rebuild ------------------------------------------------------------------------------------


def read_with_cronica(store: cronica.EventStore) -> int:
    after, count = 0, 0
    while events := store.read_all(after=after, limit=BATCH):
        after = events[-1].position
        count += len(events)
    return count


def read_raw(site: Site) -> int:
    """The floor of reading the log from Python: the driver, and JSON decoding of the data."""
    query = "SELECT event_id, event_type, aggregate_id, aggregate_type, event_version, position,"
    query += " timestamp, event_data, metadata FROM events WHERE position > ? ORDER BY position"
    query += " LIMIT ?"
    count, after = 0, 0
    if site.backend == "sqlite":
        assert site.sqlite_path is not None
        conn = open_sqlite(site.sqlite_path)
        try:
            while rows := conn.execute(query, (after, BATCH)).fetchall():
                for row in rows:
                    orjson.loads(row[7])
                    orjson.loads(row[8])
                after = rows[-1][5]
                count += len(rows)
        finally:
            conn.close()
        return count
    import psycopg

    with psycopg.connect(site.conninfo, options=f"-c search_path={site.schema}") as conn:
        pg_query = query.replace("?", "%s")
        while rows := conn.execute(pg_query, (after, BATCH)).fetchall():  # JSONB decoded by psycopg
            after = rows[-1][5]
            count += len(rows)
    return count


PROJECTOR_OPTIONS: dict[str, Any] = {"batch_size": BATCH}
"""Options of the projector that rebuilds (``--batch-size``, ``--catch-up-batch-size``,
``--read-ahead``)."""


def rebuild(store: cronica.EventStore, read_models_url: str, profile: bool = False) -> int:
    with connect_read_models(read_models_url) as db:
        projector = Projector(store, bank_projections(), db, **PROJECTOR_OPTIONS)
        profiler = cProfile.Profile() if profile else None
        try:
            if profiler is None:
                return projector.run_until_caught_up()
            return profiler.runcall(projector.run_until_caught_up)
        finally:
            projector.close()
            if profiler is not None:  # where the time of one rebuild goes, on stderr
                pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)


def timed(action: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    count = action()
    return time.perf_counter() - started, count


def bench_rebuild(
    factory: SiteFactory,
    backend: str,
    sizes: dict[str, Any],
    runs: int,
    say: Callable[[str], None],
    profile: bool = False,
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"rebuild": [], "read_all": [], "raw_read": []}
    with factory.fresh(backend, "log") as site, cronica.connect(store_url(site)) as store:  # type: ignore[arg-type]
        say(f"{backend}: writing a log of {sizes['events']:,} events")
        total = fill(store, sizes["events"], sizes["accounts"])
        for run in range(runs):
            order = ["rebuild", "read_all", "raw_read"]
            order = order[run % 3 :] + order[: run % 3]
            for name in order:
                if name == "rebuild":
                    with factory.fresh(backend, "rm") as target:  # type: ignore[arg-type]
                        first = profile and run == 0
                        seconds, count = timed(
                            lambda t=target, p=first: rebuild(store, store_url(t), p)  # type: ignore[misc]
                        )
                elif name == "read_all":
                    seconds, count = timed(lambda: read_with_cronica(store))
                else:
                    seconds, count = timed(lambda: read_raw(site))
                assert count == total, (name, count, total)
                rates[name].append(count / seconds)
                say(f"{backend} run {run + 1}: {name} {count / seconds:,.0f} events/s")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "events": total,
        "runs": rates,
        "median": medians,
        "rebuild_vs_read_all": medians["rebuild"] / medians["read_all"],
        "rebuild_vs_raw_read": medians["rebuild"] / medians["raw_read"],
    }


# -- lag ----------------------------------------------------------------------------------------


def sustained_rate(store: cronica.EventStore, accounts: list[str], seconds: float) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * 4

    def write(slot: int) -> None:
        rng = random.Random(slot)
        while time.monotonic() < stop:
            store.append(
                rng.choice(accounts),
                [NewEvent("DepositMade", {"amount": "1.00"})],
                aggregate_type=BANK_ACCOUNT,
            )
            counts[slot] += 1

    threads = [threading.Thread(target=write, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


@contextmanager
def projector_process(url: str) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "cronica", "projections", "run", "--store", url]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def checkpoint_of(url: str) -> Callable[[], int]:
    """A function reading the lowest checkpoint of the bank's projections, on its own connection."""
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"), check_same_thread=False)
        sql = "SELECT min(position), count(*) FROM cronica_projections"
    else:
        import psycopg

        base, _, schema = url.partition("?schema=")
        conn = psycopg.connect(base, autocommit=True, options=f"-c search_path={schema}")  # type: ignore[assignment]
        sql = "SELECT min(position), count(*) FROM cronica_projections"

    def read() -> int:
        try:
            low, count = conn.execute(sql).fetchone()  # type: ignore[misc]
        except Exception:  # the catalog table does not exist yet
            return -1
        return int(low) if count == 3 else -1

    return read


def bench_lag(
    factory: SiteFactory, backend: str, sizes: dict[str, Any], runs: int, say: Callable[[str], None]
) -> dict[str, Any]:
    results: list[dict[str, float]] = []
    for run in range(runs):
        with factory.fresh(backend, "lag") as site, cronica.connect(store_url(site)) as store:  # type: ignore[arg-type]
            url = store_url(site)
            accounts = [f"acc-{i}" for i in range(200)]
            for account in accounts:
                store.append(
                    account,
                    [NewEvent("AccountCreated", {"owner": account})],
                    aggregate_type=BANK_ACCOUNT,
                )
            sustained = sustained_rate(store, accounts, 3.0)
            rate = sustained / 2
            checkpoint = checkpoint_of(url)
            with projector_process(url):
                deadline = time.monotonic() + 60
                while checkpoint() < store.head_position():
                    assert time.monotonic() < deadline, "the projector did not catch up"
                    time.sleep(0.01)
                lags = measure_lag(store, accounts, rate, sizes["lag_seconds"], checkpoint)
        p50 = statistics.median(lags)
        p99 = statistics.quantiles(lags, n=100)[98]
        results.append({"sustained": sustained, "rate": rate, "p50_ms": p50, "p99_ms": p99})
        say(
            f"{backend} run {run + 1}: sustained {sustained:,.0f}/s; at {rate:,.0f}/s"
            f" lag p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(lags)} events)"
        )
    return {
        "runs": results,
        "median": {
            key: statistics.median(r[key] for r in results)
            for key in ("sustained", "rate", "p50_ms", "p99_ms")
        },
    }


def measure_lag(
    store: cronica.EventStore,
    accounts: list[str],
    rate: float,
    seconds: float,
    checkpoint: Callable[[], int],
) -> list[float]:
    acked: list[tuple[int, float]] = []
    lock = threading.Lock()
    done = threading.Event()
    start = time.monotonic() + 0.1
    writers = 4
    per_writer = rate / writers

    def write(slot: int) -> None:
        rng = random.Random(slot)
        i = 0
        while True:
            due = start + i / per_writer
            if due > start + seconds:
                return
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            result = store.append(
                rng.choice(accounts),
                [NewEvent("DepositMade", {"amount": "1.00"})],
                aggregate_type=BANK_ACCOUNT,
            )
            with lock:
                acked.append((result.position, time.monotonic()))
            i += 1

    seen: dict[int, float] = {}

    def watch() -> None:
        last = -1
        while not done.is_set() or last < store.head_position():
            position = checkpoint()
            now = time.monotonic()
            if position > last:
                last = position
                seen[position] = now
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=write, args=(slot,)) for slot in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join(timeout=60)
    reached = sorted(seen.items())
    positions = [p for p, _ in reached]
    lags = []
    for position, acked_at in acked:
        visible_at = reached[bisect.bisect_left(positions, position)][1]
        lags.append(max(0.0, visible_at - acked_at) * 1000)
    return lags


# -- report -------------------------------------------------------------------------------------


def print_report(console: Console, results: dict[str, Any]) -> None:
    table = Table(title="read side (medians)")
    headers = ["backend", "rebuild ev/s", "read_all ev/s", "raw read ev/s", "rebuild/read_all"]
    headers += ["rebuild/raw", "write rate", "lag p50", "lag p99"]
    for header in headers:
        table.add_column(header, justify="right")
    for backend, figures in results.items():
        r, lag = figures["rebuild"], figures["lag"]["median"]
        table.add_row(
            backend,
            f"{r['median']['rebuild']:,.0f}",
            f"{r['median']['read_all']:,.0f}",
            f"{r['median']['raw_read']:,.0f}",
            f"{r['rebuild_vs_read_all']:.2f}",
            f"{r['rebuild_vs_raw_read']:.2f}",
            f"{lag['rate']:,.0f}/s",
            f"{lag['p50_ms']:.1f} ms",
            f"{lag['p99_ms']:.1f} ms",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", choices=["rebuild", "lag"])
    parser.add_argument("--events", type=int, help="Events in the rebuild's log.")
    parser.add_argument("--accounts", type=int, help="Accounts in the rebuild's log.")
    parser.add_argument("--batch-size", type=int, default=BATCH, help="Projector batch size.")
    parser.add_argument("--catch-up-batch-size", type=int, help="Projector catch-up page size.")
    parser.add_argument("--read-ahead", choices=["on", "off"], help="Default: on for PostgreSQL.")
    parser.add_argument("--profile", action="store_true", help="cProfile the first rebuild.")
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("events", "accounts"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    PROJECTOR_OPTIONS["batch_size"] = args.batch_size
    if args.catch_up_batch_size is not None:
        PROJECTOR_OPTIONS["catch_up_batch_size"] = args.catch_up_batch_size
    if args.read_ahead is not None:
        PROJECTOR_OPTIONS["read_ahead"] = args.read_ahead == "on"
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    console = Console(stderr=True)
    factory = SiteFactory(POSTGRES, None)
    sizes["projector"] = dict(PROJECTOR_OPTIONS)
    info = environment.conditions(
        quick=args.quick, runs=args.runs, sizes=sizes, backend=args.backend,
        postgres=POSTGRES, tmp_dir=factory.tmp_dir,
    )  # fmt: skip
    results: dict[str, Any] = {}
    try:
        for backend in backends:
            results[backend] = {}
            if args.only in (None, "rebuild"):
                results[backend]["rebuild"] = bench_rebuild(
                    factory, backend, sizes, args.runs, console.print, args.profile
                )
            if args.only in (None, "lag"):
                results[backend]["lag"] = bench_lag(
                    factory, backend, sizes, args.runs, console.print
                )
    finally:
        factory.close()
    if args.only is None:
        print_report(console, results)
    if args.json:
        args.json.write_text(json.dumps({"conditions": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
