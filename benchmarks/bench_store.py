"""Benchmark cronica's event store against a raw-SQL baseline and eventsourcing 9.5.

    python benchmarks/bench_store.py [--backend sqlite|postgresql|all] [--runs 3] [--quick]
                                     [--json PATH]

Workloads A to E (see ``storebench/workloads.py``) run on each SQL backend for each
implementation, every one in a fresh SQLite file or PostgreSQL schema that is removed afterwards.
Each figure is the median of ``--runs`` runs. Within a run, the contenders of a workload take
turns in short slices (who goes first rotates from run to run), so outside load on this shared
machine hits them alike.
``benchmarks/run.sh`` runs this in its own virtualenv (``.venv-bench``) with eventsourcing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from storebench import environment
from storebench.impl_cronica import CronicaSubject
from storebench.impl_raw import RawPostgresSubject, RawSQLiteSubject
from storebench.report import (
    CRONICA,
    ES,
    RAW,
    RAW_SERIALISED,
    Results,
    markdown,
    render_tables,
)
from storebench.report import results_json as build_results_json
from storebench.sites import Site, SiteFactory
from storebench.subjects import BACKENDS, FULL, QUICK, BackendName, Sizes, Subject
from storebench.workloads import (
    Figure,
    WriteSection,
    populate,
    time_loads,
    time_log,
    time_writes,
)

try:
    from storebench.impl_es import EsSubject
except ImportError:  # eventsourcing is only in .venv-bench
    EsSubject = None  # type: ignore[assignment,misc]

T = TypeVar("T")
DEFAULT_CONNINFO = "postgresql://postgres@127.0.0.1:5432/test"
console = Console(width=None if sys.stdout.isatty() else 160)
progress = Console(stderr=True, highlight=False)


@dataclass(frozen=True, slots=True)
class Entry:
    """One contender of a write workload: an implementation with its writers and batch size."""

    workload: str
    impl: str
    writers: int = 1
    batch: int = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument(
        "--runs", type=int, help="runs per figure, the median is reported (3; --quick: 1)"
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test")
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


def contenders() -> list[str]:
    """The implementations compared on every workload (eventsourcing when installed)."""
    return [CRONICA, RAW] if EsSubject is None else [CRONICA, RAW, ES]


def write_groups(backend: BackendName, sizes: Sizes) -> list[list[Entry]]:
    """Workloads A, B and C; the entries of one group take turns in the same time window.

    Only cronica runs B at every writer count (its scaling); the others run the middle count,
    and on PostgreSQL the raw baseline runs it a second time with its writers serialised.
    """
    mid = sizes.writer_counts[len(sizes.writer_counts) // 2]
    scaling = [Entry(f"B{n}", CRONICA, writers=n) for n in sizes.writer_counts]
    others = [Entry(f"B{mid}", impl, writers=mid) for impl in contenders() if impl != CRONICA]
    if backend == "postgresql":
        others.insert(1, Entry(f"B{mid}", RAW_SERIALISED, writers=mid))
    return [
        [Entry("A", impl) for impl in contenders()],
        scaling + others,
        [Entry("C", impl, batch=sizes.batch) for impl in contenders()],
    ]


def rotated(items: list[T], run: int) -> list[T]:
    """``items`` starting at ``run``: who goes first changes from run to run."""
    shift = run % len(items)
    return items[shift:] + items[:shift]


def open_subject(impl: str, site: Site) -> Subject:
    if impl == CRONICA:
        return CronicaSubject(site)
    if impl == ES:
        assert EsSubject is not None
        return EsSubject(site)
    if site.backend == "sqlite":
        return RawSQLiteSubject(site)
    return RawPostgresSubject(site, serialised=impl == RAW_SERIALISED)


def open_fresh(stack: ExitStack, sites: SiteFactory, backend: BackendName, impl: str) -> Subject:
    """A subject in a fresh site; closing the stack closes it and removes the site."""
    site = stack.enter_context(sites.fresh(backend, impl.replace("-", "_")))
    subject = open_subject(impl, site)
    stack.callback(subject.close)
    return subject


def run_writes(
    sites: SiteFactory, backend: BackendName, entries: list[Entry], sizes: Sizes
) -> dict[Entry, Figure]:
    with ExitStack() as stack:
        sections = {}
        for entry in entries:
            subject = open_fresh(stack, sites, backend, entry.impl)
            section = WriteSection(subject, entry.writers, entry.batch)
            stack.callback(section.close)
            sections[entry] = section
        return time_writes(sections, sizes.seconds)


def run_reads(
    sites: SiteFactory, backend: BackendName, impls: list[str], sizes: Sizes
) -> dict[tuple[str, str], Figure]:
    """Workloads D and E on one populated site per implementation; keys are (workload, impl)."""
    with ExitStack() as stack:
        subjects = {}
        for impl in impls:
            subject = subjects[impl] = open_fresh(stack, sites, backend, impl)
            populate(subject, sizes)
        loads: dict[tuple[str, str], Callable[[str], int]] = {
            ("D", impl): subject.load_stream for impl, subject in subjects.items()
        }
        for impl, subject in subjects.items():
            load_aggregate = getattr(subject, "load_aggregate", None)
            if load_aggregate is not None:  # eventsourcing: loading an aggregate means this
                loads[("D-aggregate", impl)] = load_aggregate
        figures = time_loads(loads, sizes.stream_events, sizes.seconds)
        logs = time_log(subjects, sizes)
        figures.update({("E", impl): figure for impl, figure in logs.items()})
        return figures


def run_all(args: argparse.Namespace, sizes: Sizes, sites: SiteFactory) -> Results:
    backends: list[BackendName] = list(BACKENDS) if args.backend == "all" else [args.backend]
    results = Results()
    for run in range(args.runs):
        tag = f"[run {run + 1}/{args.runs}]"
        for backend in backends:
            for group in write_groups(backend, sizes):
                for entry, figure in run_writes(sites, backend, rotated(group, run), sizes).items():
                    record(results, tag, backend, entry.workload, entry.impl, figure)
            reads = run_reads(sites, backend, rotated(contenders(), run), sizes)
            for (workload, impl), figure in reads.items():
                record(results, tag, backend, workload, impl, figure)
    return results


def record(
    results: Results, tag: str, backend: BackendName, workload: str, impl: str, figure: Figure
) -> None:
    """Keep one figure and show it on stderr."""
    results.add(backend, workload, impl, figure)
    text = f"{figure.events_per_second:>12,.0f} ev/s"
    if figure.ms_per_load is not None:
        text += f"  {figure.ms_per_load:8.2f} ms/load"
    progress.print(f"{tag} {backend:<10} {workload:<12} {impl:<15} {text}")


def describe(args: argparse.Namespace, sizes: Sizes, sites: SiteFactory) -> dict[str, Any]:
    """The conditions of this benchmark, checked before any figure is taken."""
    info = environment.conditions(
        quick=args.quick,
        runs=args.runs,
        sizes=asdict(sizes),
        backend=args.backend,
        postgres=args.postgres,
        tmp_dir=sites.tmp_dir,
    )
    if EsSubject is None:
        progress.print("eventsourcing is not installed: its column is left out (use run.sh)")
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
    render_tables(results, sizes, console)
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
