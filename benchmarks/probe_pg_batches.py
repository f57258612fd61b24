"""What one group-commit batch costs on PostgreSQL: batches of N single-event appends to N
existing streams, sent from one thread through the store's batch path (no hand-off between
threads), medians of 400 batches per size. With ``synchronous_commit=off`` (the default
here) only the work is timed; ``--durable`` adds the flush.

    .venv/bin/python benchmarks/probe_pg_batches.py [--durable] [--sizes 1,2,7,16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import psycopg

from cronica import NewEvent
from cronica.store.postgres import PostgresEventStore

POSTGRES = os.environ.get("CRONICA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def batch_cost(size: int, durable: bool) -> float:
    """Median seconds of one batch of ``size`` appends, each to a stream of its own."""
    schema = f"probe_{uuid.uuid4().hex[:8]}"
    store = PostgresEventStore(POSTGRES, schema=schema, synchronous_commit=durable)
    try:
        versions = {f"s{i}": 0 for i in range(size)}
        for stream in versions:
            versions[stream] = store.append(stream, [NewEvent("Opened", {})], 0, "Acc").to_version
        times = []
        for _ in range(400):
            requests = [
                store.prepare_append(stream, [NewEvent("Deposited", {"amount": "1.00"})], v, "Acc")
                for stream, v in versions.items()
            ]
            started = time.perf_counter()
            outcomes = store._append_batch(requests)
            times.append(time.perf_counter() - started)
            for stream, outcome in zip(list(versions), outcomes, strict=True):
                assert not isinstance(outcome, Exception), outcome
                versions[stream] = outcome.to_version
        return statistics.median(times)
    finally:
        store.close()
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durable", action="store_true", help="synchronous_commit=on")
    parser.add_argument("--sizes", default="1,2,7,16")
    args = parser.parse_args()
    for size in (int(n) for n in args.sizes.split(",")):
        seconds = batch_cost(size, args.durable)
        each = seconds / size * 1e6
        print(f"{size:3} appends: {seconds * 1e3:.3f} ms per batch, {each:.0f} µs each")


if __name__ == "__main__":
    main()
