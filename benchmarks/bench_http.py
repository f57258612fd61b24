"""Benchmark the HTTP service under load from a separate process, on SQLite and PostgreSQL.

    python benchmarks/bench_http.py [--backend sqlite|postgresql|all] [--runs 3]
                                    [--seconds 10] [--workers 1] [--quick] [--json PATH]

Each run starts ``cronica serve`` (API and projector in one process) on a fresh store, and a
load generator in another process (asyncio + aiohttp, 32 connections) that:

1. opens 1,000 accounts;
2. **health** (the baseline): ``GET /health`` as fast as it answers: what uvicorn, FastAPI
   and the loopback give on this machine with this load generator;
3. **commands**: ``POST /accounts/{id}/deposits`` at random accounts as fast as they are
   acknowledged: the sustained rate, p50 and p99;
4. **commands at half rate**: deposits sent on a fixed schedule at half that rate; latency is
   measured from each request's scheduled time (no coordinated omission): p50 and p99;
5. **reads**: ``GET /accounts/{id}`` (the ``accounts`` read model) as fast as they answer.

Figures are medians of ``--runs`` runs, with the commands' and reads' rates also given as
ratios to the health baseline of the same run. ``bash benchmarks/run.sh http`` runs this in
``.venv-bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from storebench import environment
from storebench.sites import Site, SiteFactory

POSTGRES = os.environ.get("CRONICA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ACCOUNTS = 1000
CONNECTIONS = 32


# -- the load generator (its own process) ------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def closed_loop(session: Any, seconds: float, request: Any) -> dict[str, float]:
    """``CONNECTIONS`` workers sending ``request(session, rng)`` back to back."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            ok = await request(session, rng)
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CONNECTIONS)))
    elapsed = time.perf_counter() - started
    return summary(latencies, elapsed, errors)


async def open_loop(session: Any, seconds: float, rate: float, request: Any) -> dict[str, float]:
    """Requests at ``rate`` per second on a fixed schedule; latency from the scheduled time."""
    latencies: list[float] = []
    errors = 0
    count = int(seconds * rate)
    gap = 1.0 / rate
    start = time.perf_counter() + 0.05
    limit = asyncio.Semaphore(CONNECTIONS * 4)

    async def one(i: int) -> None:
        nonlocal errors
        scheduled = start + i * gap
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        async with limit:
            ok = await request(session, random.Random(i))
        if ok:
            latencies.append(time.perf_counter() - scheduled)
        else:
            errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return summary(latencies, time.perf_counter() - began, errors)


def summary(latencies: list[float], elapsed: float, errors: int) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "errors": errors,
        "rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def generate_load(base: str, seconds: float) -> dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=CONNECTIONS * 4)
    async with aiohttp.ClientSession(base, connector=connector) as session:
        ids = [f"acc-{i:05d}" for i in range(ACCOUNTS)]
        last = 0
        for chunk in range(0, ACCOUNTS, CONNECTIONS):
            answers = await asyncio.gather(
                *(
                    session.post("/accounts", json={"owner": f"Owner {i}", "accountId": i})
                    for i in ids[chunk : chunk + CONNECTIONS]
                )
            )
            for answer in answers:
                assert answer.status == 201, await answer.text()
                last = max(last, (await answer.json())["position"])
        # Reads below hit accounts that the read model already holds.
        async with session.get(f"/accounts/{ids[-1]}", params={"minPosition": last}) as answer:
            assert answer.status == 200, await answer.text()

        async def health(s: Any, rng: random.Random) -> bool:
            async with s.get("/health") as answer:
                await answer.read()
                return bool(answer.status == 200)

        async def deposit(s: Any, rng: random.Random) -> bool:
            account = rng.choice(ids)
            async with s.post(f"/accounts/{account}/deposits", json={"amount": "1.00"}) as answer:
                await answer.read()
                return bool(answer.status == 201)

        async def read(s: Any, rng: random.Random) -> bool:
            async with s.get(f"/accounts/{rng.choice(ids)}") as answer:
                await answer.read()
                return bool(answer.status == 200)

        results: dict[str, Any] = {}
        results["health"] = await closed_loop(session, seconds, health)
        results["commands"] = await closed_loop(session, seconds, deposit)
        half = results["commands"]["rate"] / 2
        results["commands_half_rate"] = {
            "target_rate": half,
            **(await open_loop(session, seconds, half, deposit)),
        }
        results["reads"] = await closed_loop(session, seconds, read)
        return results


# -- the conductor ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def store_url(site: Site) -> str:
    if site.backend == "sqlite":
        return f"sqlite:///{site.sqlite_path}"
    return f"{site.conninfo}?schema={site.schema}"


def wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not come up")


def one_run(factory: SiteFactory, backend: str, seconds: float, workers: int) -> dict[str, Any]:
    with factory.fresh(backend, "http") as site:  # type: ignore[arg-type]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "cronica", "serve", "--store", store_url(site),
             "--port", str(port), "--log-level", "warning", "--workers", str(workers)],
            cwd=factory.tmp_dir,
        )  # fmt: skip
        try:
            wait_until_up(base, server)
            load = subprocess.run(
                [sys.executable, __file__, "--load", base, "--seconds", str(seconds)],
                capture_output=True,
                text=True,
                check=True,
            )
            result: dict[str, Any] = json.loads(load.stdout)
            return result
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase in runs[0]:
        out[phase] = {
            key: statistics.median(run[phase][key] for run in runs) for key in runs[0][phase]
        }
    for phase in ("commands", "reads"):
        out[phase]["ratio_to_health"] = statistics.median(
            run[phase]["rate"] / run["health"]["rate"] for run in runs
        )
    return out


def print_report(console: Console, results: dict[str, Any]) -> None:
    table = Table(title="HTTP service (medians)")
    for header in ("backend", "health/s", "commands/s", "p50", "p99", "at half: p50", "p99",
                   "reads/s", "p99"):  # fmt: skip
        table.add_column(header, justify="right")
    for backend, r in results.items():
        m = r["median"]
        table.add_row(
            backend,
            f"{m['health']['rate']:,.0f}",
            f"{m['commands']['rate']:,.0f} ({m['commands']['ratio_to_health']:.2f})",
            f"{m['commands']['p50_ms']:.1f} ms",
            f"{m['commands']['p99_ms']:.1f} ms",
            f"{m['commands_half_rate']['p50_ms']:.1f} ms",
            f"{m['commands_half_rate']['p99_ms']:.1f} ms",
            f"{m['reads']['rate']:,.0f} ({m['reads']['ratio_to_health']:.2f})",
            f"{m['reads']['p99_ms']:.1f} ms",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=None, help="Per phase (default 10).")
    parser.add_argument("--quick", action="store_true", help="One run, 3 s per phase.")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--workers", type=int, default=1, help="API processes (cronica serve --workers)."
    )
    parser.add_argument("--load", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    if args.load:
        print(json.dumps(asyncio.run(generate_load(args.load, seconds))))
        return
    runs = 1 if args.quick else args.runs
    console = Console(stderr=True)
    factory = SiteFactory(POSTGRES, None)
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    info = environment.conditions(
        quick=args.quick, runs=runs, sizes={"accounts": ACCOUNTS, "connections": CONNECTIONS,
        "seconds": seconds, "workers": args.workers}, backend=args.backend, postgres=POSTGRES,
        tmp_dir=factory.tmp_dir,
    )  # fmt: skip
    results: dict[str, Any] = {}
    try:
        for backend in backends:
            done = []
            for run in range(runs):
                result = one_run(factory, backend, seconds, args.workers)
                c, h, r = result["commands"], result["commands_half_rate"], result["reads"]
                console.print(
                    f"{backend} run {run + 1}: health {result['health']['rate']:,.0f}/s;"
                    f" commands {c['rate']:,.0f}/s p99 {c['p99_ms']:.1f} ms;"
                    f" at {h['target_rate']:,.0f}/s p50 {h['p50_ms']:.1f} ms"
                    f" p99 {h['p99_ms']:.1f} ms; reads {r['rate']:,.0f}/s"
                )
                done.append(result)
            results[backend] = {"runs": done, "median": medians(done)}
    finally:
        factory.close()
    print_report(console, results)
    if args.json:
        args.json.write_text(json.dumps({"conditions": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
