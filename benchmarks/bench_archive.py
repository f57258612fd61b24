"""Benchmark archiving: events/s moved into Parquet files and back, beside reading them.

    python benchmarks/bench_archive.py [--backend sqlite|postgresql|all] [--streams 5000]
                                       [--events-per-stream 10] [--runs 3] [--json PATH]

The store holds ``--streams`` streams of ``--events-per-stream`` bank-like events each. Each run
then, in one process:

- **read**: reads them all through ``read_all`` (the baseline: the plain read rate);
- **archive**: ``Archiver.archive`` of every stream, in batches of 2,000 streams (read each
  stream, write and read back the Parquet file, checksum, manifest, then delete the events
  and write the index in one transaction);
- **restore**: ``Archiver.restore`` of every batch (checksum, read the file, insert the events
  back with their positions, drop the index rows and the files).

Figures are medians of ``--runs`` runs, each also as a ratio to the read rate of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

import cronica
from cronica.archive import ArchivePolicy, Archiver
from storebench import environment
from storebench.impl_cronica import store_url
from storebench.sites import SiteFactory

POSTGRES = os.environ.get("CRONICA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def fill(store: cronica.EventStore, streams: int, per_stream: int) -> int:
    for n in range(streams):
        store.append(
            f"acc-{n}",
            [
                cronica.NewEvent("DepositMade", {"amount": f"{k}.00", "n": n})
                for k in range(per_stream)
            ],
            aggregate_type="BankAccount",
        )
    return streams * per_stream


def read_rate(store: cronica.EventStore, total: int) -> float:
    started = time.perf_counter()
    after = read = 0
    while page := store.read_all(after=after, limit=5000):
        read += len(page)
        after = page[-1].position
    assert read == total, (read, total)
    return read / (time.perf_counter() - started)


def archive_rate(archiver: Archiver, total: int) -> float:
    policy = ArchivePolicy(idle_for=timedelta(0), max_streams=2000)
    started = time.perf_counter()
    moved = 0
    while (report := archiver.archive(policy, actor="bench", reason="benchmark")).batch:
        moved += report.events
    assert moved == total, (moved, total)
    return moved / (time.perf_counter() - started)


def restore_rate(archiver: Archiver, total: int) -> float:
    started = time.perf_counter()
    back = sum(archiver.restore(batch=b.batch).events for b in archiver.batches())
    assert back == total, (back, total)
    return back / (time.perf_counter() - started)


def bench(
    factory: SiteFactory, backend: str, streams: int, per_stream: int, runs: int, say: Any
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"read": [], "archive": [], "restore": []}
    with (
        factory.fresh(backend, "archive") as site,  # type: ignore[arg-type]
        cronica.connect(store_url(site)) as store,
        tempfile.TemporaryDirectory() as directory,
    ):
        total = fill(store, streams, per_stream)
        archiver = Archiver(store, Path(directory))
        for run in range(runs):
            for name, measure in (
                ("read", lambda: read_rate(store, total)),
                ("archive", lambda: archive_rate(archiver, total)),
                ("restore", lambda: restore_rate(archiver, total)),
            ):
                rate = measure()
                rates[name].append(rate)
                say(f"{backend} run {run + 1}: {name} {rate:,.0f} events/s")
    median = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "runs": rates,
        "median": median,
        "ratios": {
            "archive_to_read": median["archive"] / median["read"],
            "restore_to_read": median["restore"] / median["read"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--events-per-stream", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 streams, one run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.streams, args.runs = 500, 1
    console = Console(stderr=True)
    factory = SiteFactory(POSTGRES, None)
    info = environment.conditions(
        quick=args.quick, runs=args.runs,
        sizes={"streams": args.streams, "events_per_stream": args.events_per_stream},
        backend=args.backend, postgres=POSTGRES, tmp_dir=factory.tmp_dir,
    )  # fmt: skip
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    results: dict[str, Any] = {}
    try:
        for backend in backends:
            results[backend] = m = bench(
                factory, backend, args.streams, args.events_per_stream, args.runs, console.print
            )
            console.print(
                f"{backend}: archive {m['median']['archive']:,.0f} events/s"
                f" ({m['ratios']['archive_to_read']:.2f} of reading them), restore"
                f" {m['median']['restore']:,.0f} events/s"
                f" ({m['ratios']['restore_to_read']:.2f})"
            )
    finally:
        factory.close()
    if args.json:
        args.json.write_text(json.dumps({"conditions": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
