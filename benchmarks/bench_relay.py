"""Benchmark the relay: events/s from the store's log into Redis Streams.

    python benchmarks/bench_relay.py [--backend sqlite|postgresql|all] [--events 200000]
                                     [--runs 3] [--json PATH]

A log of ``--events`` bank events is written once per backend. Each run then measures, in
turns (the order rotating from run to run):

- **relay**: a fresh ``Relay`` publishes the whole log to a fresh Redis stream (read the log in
  pages of 1,000, publish each page in one Lua script of XADDs, move the checkpoint);
- **baseline**: the same entries, already in memory, sent to a fresh stream with the same
  pipelined ``XADD`` calls: what Redis and redis-py take, with no store and no checkpoint.

Figures are medians of ``--runs`` runs; the relay is also given as a ratio to the baseline.

Then **latency**, append to consumer: events are appended one at a time at ``--rate`` per second
for ``--seconds``, while a relay (a thread) publishes them and a consumer group
(``StreamConsumer``, another thread, blocking reads) takes them; an event's latency runs from
its append returning to its handler being called. Beside it, the same rate of ``XADD``s straight
to Redis and the same consumer: the broker's own share. Reported as p50 and p99.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from rich.console import Console

import cronica
from cronica.bus.redis_consumer import StreamConsumer
from cronica.bus.redis_streams import RedisStreamsBus, entry_fields
from cronica.relay import Relay
from storebench import environment
from storebench.impl_cronica import store_url
from storebench.sites import SiteFactory

POSTGRES = os.environ.get("CRONICA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("CRONICA_BENCH_REDIS", "redis://127.0.0.1:6379/0")
PAGE = 1000
LATENCY_RATE = 1000.0
LATENCY_SECONDS = 5.0


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


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def latency(
    store: cronica.EventStore, rate: float, seconds: float, via_store: bool
) -> dict[str, float]:
    """p50 and p99 (ms) from an append (or a plain XADD) to the consumer's handler."""
    key = f"cronbench:{uuid.uuid4().hex}"
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    done = threading.Event()
    total = int(rate * seconds)

    def handle(event: cronica.RecordedEvent) -> None:
        received[str(event.event_id)] = time.perf_counter()
        if len(received) >= total:
            done.set()

    consumer = StreamConsumer(handle, group="bench", consumer="c", url=REDIS, stream=key)
    bus = RedisStreamsBus(REDIS, stream=key)
    relay = Relay(store, bus, batch_size=PAGE, idle_wait=1.0) if via_store else None
    if relay is not None:
        relay.seek(store.head_position())  # only the events appended from here on
    consumer.start()
    if relay is not None:
        relay.start()
    try:
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            new = cronica.NewEvent("Tick", {"n": i})
            if relay is not None:
                store.append(f"lat-{i % 100}", [new])
                sent[str(new.event_id)] = time.perf_counter()
            else:
                event = cronica.RecordedEvent(
                    new.event_id, "Tick", "x", "", 1, i + 1, datetime.now(UTC), new.data, {}
                )
                bus.publish([event])
                sent[str(new.event_id)] = time.perf_counter()
        done.wait(30)
    finally:
        if relay is not None:
            relay.close()
        consumer.close()
        bus.close()
        redis.Redis.from_url(REDIS).delete(key)
    lags = [received[k] - sent[k] for k in sent if k in received]
    return {"p50_ms": _percentile(lags, 0.5), "p99_ms": _percentile(lags, 0.99),
            "delivered": len(lags), "sent": len(sent)}  # fmt: skip


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
        lat: dict[str, list[dict[str, float]]] = {"relay": [], "redis": []}
        for run in range(runs):
            for name in ["relay", "redis"] if run % 2 == 0 else ["redis", "relay"]:
                result = latency(store, LATENCY_RATE, LATENCY_SECONDS, via_store=name == "relay")
                lat[name].append(result)
                say(
                    f"{backend} run {run + 1}: latency via {name}: p50 {result['p50_ms']:.1f}"
                    f" ms, p99 {result['p99_ms']:.1f} ms ({result['delivered']}/{result['sent']})"
                )
    median = {name: statistics.median(values) for name, values in rates.items()}
    latency_median = {
        name: {k: statistics.median(r[k] for r in results) for k in ("p50_ms", "p99_ms")}
        for name, results in lat.items()
    }
    return {
        "runs": rates,
        "median": median,
        "ratio": median["relay"] / median["baseline"],
        "latency": {"runs": lat, "median": latency_median},
    }


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
            lat = m["latency"]["median"]
            console.print(
                f"{backend}: relay {m['median']['relay']:,.0f} events/s, baseline"
                f" {m['median']['baseline']:,.0f} events/s, ratio {m['ratio']:.2f}; append to"
                f" consumer p50 {lat['relay']['p50_ms']:.1f} ms,"
                f" p99 {lat['relay']['p99_ms']:.1f} ms (Redis alone:"
                f" {lat['redis']['p50_ms']:.1f} / {lat['redis']['p99_ms']:.1f} ms)"
            )
    finally:
        factory.close()
    if args.json:
        args.json.write_text(json.dumps({"conditions": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
