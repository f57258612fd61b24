"""Benchmark the relay: events/s from the store's log into Redis Streams.

    python benchmarks/bench_relay.py [--backend sqlite|postgresql|all] [--events 200000]
                                     [--runs 3] [--json PATH]

A log of ``--events`` bank events is written once per backend. Each run then measures, in
turns (the order rotating from run to run):

- **relay**: a fresh ``Relay`` publishes the whole log to a fresh Redis stream (read the log in
  pages of 1,000, publish each page in one pipeline, move the checkpoint);
- **baseline**: the same entries, already in memory, sent to a fresh stream with the same
  pipelined ``XADD`` calls: what Redis and redis-py take, with no store and no checkpoint.

Figures are medians of ``--runs`` runs; the relay is also given as a ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from rich.console import Console

import cronica
from cronica.bus.redis_streams import RedisStreamsBus, entry_fields
from cronica.relay import Relay
from storebench import environment
from storebench.sites import Site, SiteFactory

POSTGRES = os.environ.get("CRONICA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("CRONICA_BENCH_REDIS", "redis://127.0.0.1:6379/0")
PAGE = 1000


def store_url(site: Site) -> str:
    if site.backend == "sqlite":
        return f"sqlite:///{site.sqlite_path}"
    return f"{site.conninfo}?schema={site.schema}"


def fill(store: cronica.EventStore, total: int) -> None:
    batch = 100
    for start in range(0, total, batch):
        events = [
            cronica.NewEvent("DepositMade", {"amount": f"{n % 500 + 1}.00"})
            for n in range(start, min(total, start + batch))
        ]
        store.append(f"acc-{start // batch % 1000:04d}", events, aggregate_type="BankAccount")


def relay_rate(store: cronica.EventStore, client: redis.Redis) -> float:
    key = f"cronbench:{uuid.uuid4().hex}"
    bus = RedisStreamsBus(REDIS, stream=key)
    try:
        with Relay(store, bus, batch_size=PAGE) as relay:
            started = time.perf_counter()
            count = relay.run_until_caught_up()
            seconds = time.perf_counter() - started
    finally:
        bus.close()
        client.delete(key)
    return count / seconds


def baseline_rate(events: list[cronica.RecordedEvent], client: redis.Redis) -> float:
    key = f"cronbench:{uuid.uuid4().hex}"
    try:
        started = time.perf_counter()
        for start in range(0, len(events), PAGE):
            pipe = client.pipeline(transaction=False)
            for event in events[start : start + PAGE]:
                pipe.xadd(key, entry_fields(event), id=f"{event.position}-0")
            pipe.execute()
        seconds = time.perf_counter() - started
    finally:
        client.delete(key)
    return len(events) / seconds


def bench(factory: SiteFactory, backend: str, total: int, runs: int, say: Any) -> dict[str, Any]:
    client = redis.Redis.from_url(REDIS)
    rates: dict[str, list[float]] = {"relay": [], "baseline": []}
    with factory.fresh(backend, "relay") as site, cronica.connect(store_url(site)) as store:  # type: ignore[arg-type]
        say(f"{backend}: writing a log of {total:,} events")
        fill(store, total)
        events = store.read_all()
        for run in range(runs):
            order = ["relay", "baseline"] if run % 2 == 0 else ["baseline", "relay"]
            for name in order:
                # Each relay run keeps its checkpoint under a new stream name: it starts at 0.
                rate = (
                    relay_rate(store, client) if name == "relay" else baseline_rate(events, client)
                )
                rates[name].append(rate)
                say(f"{backend} run {run + 1}: {name} {rate:,.0f} events/s")
    median = {name: statistics.median(values) for name, values in rates.items()}
    return {"runs": rates, "median": median, "ratio": median["relay"] / median["baseline"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    console = Console(stderr=True)
    factory = SiteFactory(POSTGRES, None)
    info = environment.conditions(
        quick=False, runs=args.runs, sizes={"events": args.events, "page": PAGE},
        backend=args.backend, postgres=POSTGRES, tmp_dir=factory.tmp_dir,
    )  # fmt: skip
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    results: dict[str, Any] = {}
    try:
        for backend in backends:
            results[backend] = bench(factory, backend, args.events, args.runs, console.print)
            m = results[backend]
            console.print(
                f"{backend}: relay {m['median']['relay']:,.0f} events/s, baseline"
                f" {m['median']['baseline']:,.0f} events/s, ratio {m['ratio']:.2f}"
            )
    finally:
        factory.close()
    if args.json:
        args.json.write_text(json.dumps({"conditions": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
