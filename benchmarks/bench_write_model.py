"""Benchmark cronica's write model (Repository) against eventsourcing 9.5's Application.

    python benchmarks/bench_write_model.py [--backend sqlite|postgresql|all] [--runs 3]
                                           [--quick] [--no-es-loads] [--json PATH]

Two workloads on each SQL backend (see ``writebench/workloads.py``):

- the command round trip (load the account, deposit, append one event), one thread, on 100
  accounts in turn: cronica's ``Repository.execute`` (with ``BankAccount``'s snapshots every 100
  events, and without), a hand-written raw-SQL baseline, and eventsourcing's
  ``repository.get`` / ``save``;
- aggregate loads of 100, 10,000 and 100,000 events, without a snapshot, with one at the head,
  and with one 99 events behind (cronica), and eventsourcing's ``repository.get`` with and
  without a snapshot at the head.

Every contender works in a fresh SQLite file or PostgreSQL schema, removed afterwards; the
contenders of a workload take turns, and who goes first rotates from run to run. Each figure is
the median of ``--runs`` runs. ``benchmarks/run_write_model.sh`` runs this in ``.venv-bench``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from storebench import environment
from storebench.sites import Site, SiteFactory
from storebench.subjects import BACKENDS, BackendName
from storebench.workloads import Figure
from writebench.common import (
    COMMAND_AMOUNT,
    FULL,
    INITIAL_AMOUNT,
    LOAD_AMOUNT,
    QUICK,
    WriteModelSizes,
)
from writebench.impl_cronica import CronicaCommands, CronicaLoads
from writebench.impl_raw import RawPostgresCommands, RawSQLiteCommands
from writebench.report import (
    BEHIND,
    COMMANDS,
    CRONICA,
    CRONICA_NO_SNAPSHOTS,
    ES,
    HEAD,
    NONE,
    RAW,
    Results,
    load_workload,
    markdown,
    render,
)
from writebench.report import results_json as build_results_json
from writebench.workloads import CommandSection, CommandSubject, time_commands, time_loads

try:
    from writebench.impl_es import EsCommands, EsLoads
except ImportError:  # eventsourcing is only in .venv-bench
    EsCommands = EsLoads = None  # type: ignore[assignment,misc]

T = TypeVar("T")
DEFAULT_CONNINFO = "postgresql://postgres@127.0.0.1:5432/test"
console = Console(width=None if sys.stdout.isatty() else 160)
progress = Console(stderr=True, highlight=False)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument(
        "--runs", type=int, help="runs per figure, the median is reported (3; --quick: 1)"
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test")
    parser.add_argument(
        "--no-es-loads",
        action="store_true",
        help="leave eventsourcing out of the load workload (its 100,000-event loads are slow)",
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the tables as Markdown here")
    parser.add_argument("--postgres", default=DEFAULT_CONNINFO, help="libpq URL of the server")
    parser.add_argument("--tmp", type=Path, help="directory for the SQLite files")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def rotated(items: list[T], run: int) -> list[T]:
    shift = run % len(items)
    return items[shift:] + items[:shift]


def command_contenders() -> list[str]:
    found = [CRONICA, CRONICA_NO_SNAPSHOTS, RAW]
    return found if EsCommands is None else [*found, ES]


def open_commands(contender: str, site: Site, sizes: WriteModelSizes) -> CommandSubject:
    if contender in (CRONICA, CRONICA_NO_SNAPSHOTS):
        return CronicaCommands(site, sizes, snapshots=contender == CRONICA)
    if contender == ES:
        assert EsCommands is not None
        return EsCommands(site, sizes)
    if site.backend == "sqlite":
        return RawSQLiteCommands(site, sizes)
    return RawPostgresCommands(site, sizes)


def run_commands(
    sites: SiteFactory, backend: BackendName, contenders: list[str], sizes: WriteModelSizes
) -> dict[str, Figure]:
    initial = sizes.accounts * (sizes.initial_events - 1) * INITIAL_AMOUNT
    with ExitStack() as stack:
        sections = {}
        for contender in contenders:
            site = stack.enter_context(sites.fresh(backend, contender.replace("-", "_")))
            subject = open_commands(contender, site, sizes)
            stack.callback(subject.close)
            sections[contender] = CommandSection(subject, initial, Decimal(COMMAND_AMOUNT))
        return time_commands(sections, sizes.commands)


def run_loads(
    sites: SiteFactory, backend: BackendName, sizes: WriteModelSizes, run: int, with_es: bool
) -> dict[tuple[str, int], Figure]:
    """Keys are (contender, size), contender ``impl/variant``."""
    with ExitStack() as stack:
        loads: dict[tuple[str, int], Callable[[], None]] = {}
        cronica = CronicaLoads(stack.enter_context(sites.fresh(backend, "cronica")), sizes)
        stack.callback(cronica.close)
        for size in sizes.load_events:
            for variant in (NONE, HEAD, BEHIND):
                aggregate_id, repo = cronica.loader(variant, size)
                loads[(f"{CRONICA}/{variant}", size)] = _checked(
                    functools.partial(repo.load, aggregate_id), size
                )
        if with_es and EsLoads is not None:
            es = EsLoads(stack.enter_context(sites.fresh(backend, "es")), sizes)
            stack.callback(es.close)
            for size in sizes.load_events:
                for variant in (NONE, HEAD):
                    account_id, app = es.loader(variant, size)
                    loads[(f"{ES}/{variant}", size)] = _checked(
                        functools.partial(app.repository.get, account_id), size
                    )
        order = rotated(list(loads), run)
        return time_loads(
            {key: loads[key] for key in order}, {key: key[1] for key in order}, sizes.load_seconds
        )


def _checked(load: Callable[[], Any], size: int) -> Callable[[], None]:
    """``load``, checking the aggregate's version and balance each time."""
    balance = (size - 1) * LOAD_AMOUNT

    def run() -> None:
        account = load()
        if account.version != size or account.balance != balance:
            raise RuntimeError(
                f"loaded version {account.version}, balance {account.balance};"
                f" expected {size}, {balance}"
            )

    return run


def run_all(args: argparse.Namespace, sizes: WriteModelSizes, sites: SiteFactory) -> Results:
    backends: list[BackendName] = list(BACKENDS) if args.backend == "all" else [args.backend]
    results = Results()
    for run in range(args.runs):
        tag = f"[run {run + 1}/{args.runs}]"
        for backend in backends:
            contenders = rotated(command_contenders(), run)
            for contender, figure in run_commands(sites, backend, contenders, sizes).items():
                results.add(backend, COMMANDS, contender, figure)
                progress.print(
                    f"{tag} {backend:<10} commands     {contender:<22}"
                    f" {figure.events_per_second:>10,.0f} commands/s"
                )
            loads = run_loads(sites, backend, sizes, run, not args.no_es_loads)
            for (contender, size), figure in sorted(loads.items(), key=lambda kv: kv[0][1]):
                results.add(backend, load_workload(size), contender, figure)
                progress.print(
                    f"{tag} {backend:<10} load {size:<7,} {contender:<22}"
                    f" {figure.ms_per_load or 0.0:>10,.3f} ms/load"
                )
    return results


def describe(
    args: argparse.Namespace, sizes: WriteModelSizes, sites: SiteFactory
) -> dict[str, Any]:
    info = environment.conditions(
        quick=args.quick,
        runs=args.runs,
        sizes=asdict(sizes),
        backend=args.backend,
        postgres=args.postgres,
        tmp_dir=sites.tmp_dir,
    )
    if EsCommands is None:
        progress.print("eventsourcing is not installed: it is left out (use run_write_model.sh)")
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    sites = SiteFactory(args.postgres, args.tmp)
    started = time.perf_counter()
    try:
        info = describe(args, sizes, sites)
        results = run_all(args, sizes, sites)
    finally:
        sites.close()
    info["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    info["machine"]["load_average_after"] = environment.load_average()
    render(results, sizes, console)
    console.print(f"elapsed: {info['elapsed_seconds']} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {**info, **build_results_json(results, sizes)}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    if args.markdown is not None:
        args.markdown.write_text(markdown(results, sizes))
        console.print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
