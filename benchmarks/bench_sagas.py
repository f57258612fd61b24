"""Benchmark the saga: bank transfers/s through the transfer saga beside the bare commands.

    python benchmarks/bench_sagas.py [--backend sqlite|postgresql|all] [--transfers 1000]
                                     [--runs 3] [--json PATH]

``--accounts`` accounts are opened with money once per backend. Each run then makes
``--transfers`` transfers between random pairs of them, in turns (the order rotating from run to
run), in one thread:

- **saga**: ``Sagas.begin`` then ``SagaRunner.drive`` per transfer: ``SagaStarted``, the debit
  and the credit under idempotency keys (each first looks its key up), the saga's records of
  both steps and its ending: five appends and two key lookups per transfer;
- **baseline**: the same debit and credit as two plain commands (``Repository.execute``), with
  no saga: what moving the money costs when nothing remembers the process.

Figures are medians of ``--runs`` runs; the saga is also given as a ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console

import cronica
from cronica.examples.bank import BankAccount, bank_events
from cronica.examples.transfers import Transfer, transfer_steps
from cronica.readmodels import read_models_for
from cronica.repository import Repository
from cronica.sagas import SagaRunner, Sagas
from storebench import environment
from storebench.impl_cronica import store_url
from storebench.sites import SiteFactory

POSTGRES = os.environ.get("CRONICA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def pairs(accounts: list[str], count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [tuple(rng.sample(accounts, 2)) for _ in range(count)]  # type: ignore[misc]


def saga_rate(store: cronica.EventStore, moves: list[tuple[str, str]]) -> float:
    accounts = Repository(store, BankAccount, bank_events)
    sagas = Sagas(store, Transfer)
    with read_models_for(store) as timers:
        runner = SagaRunner(sagas, transfer_steps(accounts), timers=timers)
        started = time.perf_counter()
        for source, target in moves:
            transfer_id = f"tr-{uuid.uuid4().hex}"
            sagas.begin(transfer_id, {"from": source, "to": target, "amount": "1"})
            done = runner.drive(transfer_id)
            assert done is not None
            assert done.status == "completed", done.reason
        return len(moves) / (time.perf_counter() - started)


def baseline_rate(store: cronica.EventStore, moves: list[tuple[str, str]]) -> float:
    accounts = Repository(store, BankAccount, bank_events)
    started = time.perf_counter()
    for source, target in moves:
        transfer_id = f"tr-{uuid.uuid4().hex}"
        accounts.execute(source, lambda a, t=transfer_id, to=target: a.send_transfer(t, to, "1"))
        accounts.execute(target, lambda a, t=transfer_id, f=source: a.receive_transfer(t, f, "1"))
    return len(moves) / (time.perf_counter() - started)


def bench(
    factory: SiteFactory, backend: str, count: int, accounts: int, runs: int, say: Any
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"saga": [], "baseline": []}
    with factory.fresh(backend, "sagas") as site, cronica.connect(store_url(site)) as store:  # type: ignore[arg-type]
        ids = [f"acc-{n}" for n in range(accounts)]
        bank = Repository(store, BankAccount, bank_events)
        for account_id in ids:
            bank.create(account_id, lambda a: a.open("O"))
            bank.execute(account_id, lambda a: a.deposit("1000000.00"))
        for run in range(runs):
            order = ["saga", "baseline"] if run % 2 == 0 else ["baseline", "saga"]
            for name in order:
                moves = pairs(ids, count, seed=run * 2 + (name == "saga"))
                measure = saga_rate if name == "saga" else baseline_rate
                rate = measure(store, moves)
                rates[name].append(rate)
                say(f"{backend} run {run + 1}: {name} {rate:,.0f} transfers/s")
    median = {name: statistics.median(values) for name, values in rates.items()}
    return {"runs": rates, "median": median, "ratio": median["saga"] / median["baseline"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--transfers", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100 transfers, one run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.transfers, args.runs = 100, 1
    console = Console(stderr=True)
    factory = SiteFactory(POSTGRES, None)
    info = environment.conditions(
        quick=args.quick, runs=args.runs,
        sizes={"transfers": args.transfers, "accounts": args.accounts},
        backend=args.backend, postgres=POSTGRES, tmp_dir=factory.tmp_dir,
    )  # fmt: skip
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    results: dict[str, Any] = {}
    try:
        for backend in backends:
            results[backend] = m = bench(
                factory, backend, args.transfers, args.accounts, args.runs, console.print
            )
            console.print(
                f"{backend}: saga {m['median']['saga']:,.0f} transfers/s, baseline"
                f" {m['median']['baseline']:,.0f} transfers/s, ratio {m['ratio']:.2f}"
            )
    finally:
        factory.close()
    if args.json:
        args.json.write_text(json.dumps({"conditions": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
