"""Medians of the runs, cronica's ratios to the other implementations, the targets, the output."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from storebench.subjects import BackendName, Sizes
from storebench.workloads import Figure

CRONICA: Final = "cronica"
RAW: Final = "raw"
RAW_SERIALISED: Final = "raw-serialised"
ES: Final = "eventsourcing"
IMPLEMENTATIONS: Final = (CRONICA, RAW, RAW_SERIALISED, ES)
_SHORT: Final = {RAW_SERIALISED: "raw-ser.", ES: "es"}
_CRONICA_COUNTERPART: Final = {"D-aggregate": "D"}
"""Workloads that only eventsourcing runs, and cronica's figure to compare them with."""


def workload_titles(sizes: Sizes) -> dict[str, str]:
    """Workload keys in display order, with a short title each."""
    titles = {"A": "A  1 writer, 1 event/append"}
    titles.update(
        {f"B{n}": f"B  {n} thread{'s' * (n > 1)}, 1 event/append" for n in sizes.writer_counts}
    )
    titles["C"] = f"C  {sizes.batch} events/append"
    titles["D"] = f"D  load {sizes.stream_events:,}-event stream"
    titles["D-aggregate"] = "D' same, rebuilt as aggregate"
    titles["E"] = f"E  read_all {sizes.log_events:,} events"
    return {key: titles[key] for key in _order(sizes)}


def _order(sizes: Sizes) -> list[str]:
    return ["A", *(f"B{n}" for n in sizes.writer_counts), "C", "D", "D-aggregate", "E"]


@dataclass(slots=True)
class Cell:
    """Every run's figure for one backend, workload and implementation."""

    runs: list[Figure] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Median events per second over the runs."""
        return statistics.median(figure.events_per_second for figure in self.runs)

    @property
    def ms_per_load(self) -> float | None:
        """Median milliseconds per load over the runs (workload D only)."""
        values = [f.ms_per_load for f in self.runs if f.ms_per_load is not None]
        return statistics.median(values) if values else None


@dataclass(frozen=True, slots=True)
class Target:
    """One of the issue's targets, evaluated on one backend."""

    backend: BackendName
    name: str
    measured: str
    met: bool | None
    """None when a figure it needs was not measured (say, eventsourcing not installed)."""


class Results:
    """Figures by (backend, workload, implementation); ratios and targets from their medians."""

    def __init__(self) -> None:
        self.cells: dict[tuple[BackendName, str, str], Cell] = {}

    def add(self, backend: BackendName, workload: str, impl: str, figure: Figure) -> None:
        self.cells.setdefault((backend, workload, impl), Cell()).runs.append(figure)

    def rate(self, backend: BackendName, workload: str, impl: str) -> float | None:
        cell = self.cells.get((backend, workload, impl))
        return cell.rate if cell is not None and cell.runs else None

    def ratio(self, backend: BackendName, workload: str, other: str) -> float | None:
        """cronica's median rate over ``other``'s, on the same workload (higher is better)."""
        mine = self.rate(backend, _CRONICA_COUNTERPART.get(workload, workload), CRONICA)
        theirs = self.rate(backend, workload, other)
        if mine is None or theirs is None or theirs == 0:
            return None
        return mine / theirs

    def implementations(self, backend: BackendName) -> list[str]:
        """The implementations measured on ``backend``, in display order."""
        present = {impl for (b, _, impl) in self.cells if b == backend}
        return [impl for impl in IMPLEMENTATIONS if impl in present]

    def backends(self) -> list[BackendName]:
        return list(dict.fromkeys(key[0] for key in self.cells))

    def targets(self, backend: BackendName, sizes: Sizes) -> list[Target]:
        """The issue's targets; a target whose figures are missing is reported as not met."""
        low, mid, high = sizes.writer_counts
        scaling = [self.rate(backend, f"B{n}", CRONICA) for n in sizes.writer_counts]
        known = [r for r in scaling if r is not None]
        grows = _strictly_increasing(known) if len(known) == len(scaling) else None
        return [
            _ratio_target(backend, "A >= 80% of raw", self.ratio(backend, "A", RAW), 0.8),
            _ratio_target(backend, f"B{mid} >= 2x raw", self.ratio(backend, f"B{mid}", RAW), 2.0),
            Target(
                backend,
                f"B grows {low} -> {mid} -> {high} writers",
                " -> ".join(_rate_text(r) for r in scaling),
                grows,
            ),
            _ratio_target(backend, "C >= 60% of raw", self.ratio(backend, "C", RAW), 0.6),
            _ratio_target(
                backend, "D >= 4x eventsourcing events.get", self.ratio(backend, "D", ES), 4.0
            ),
            _ratio_target(
                backend,
                "D >= 4x eventsourcing repository.get",
                self.ratio(backend, "D-aggregate", ES),
                4.0,
            ),
            _ratio_target(backend, "E >= 60% of raw", self.ratio(backend, "E", RAW), 0.6),
        ]


def _strictly_increasing(values: list[float]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


def _ratio_target(backend: BackendName, name: str, ratio: float | None, threshold: float) -> Target:
    met = None if ratio is None else ratio >= threshold
    return Target(backend, name, _ratio_text(ratio), met)


def _rate_text(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.0f}"


def _ratio_text(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f}x" if ratio >= 1.5 else f"{ratio:.0%}"


def _cell_text(results: Results, backend: BackendName, workload: str, impl: str) -> str:
    cell = results.cells.get((backend, workload, impl))
    if cell is None or not cell.runs:
        return ""
    ms = cell.ms_per_load
    rate = f"{cell.rate:,.0f}"
    return rate if ms is None else f"{ms:,.1f} ms ({rate})"


def table_rows(results: Results, backend: BackendName, sizes: Sizes) -> list[list[str]]:
    """The header and rows of one backend's table: medians, then cronica's ratios."""
    impls = results.implementations(backend)
    ratio_columns = [impl for impl in (RAW, RAW_SERIALISED, ES) if impl in impls]
    header = ["workload", *impls, *(f"cronica/{_SHORT.get(o, o)}" for o in ratio_columns)]
    rows = [header]
    for workload, title in workload_titles(sizes).items():
        if not any(k[0] == backend and k[1] == workload for k in results.cells):
            continue
        rows.append(
            [
                title,
                *[_cell_text(results, backend, workload, impl) for impl in impls],
                *[_ratio_text(results.ratio(backend, workload, other)) for other in ratio_columns],
            ]
        )
    return rows


def render_tables(results: Results, sizes: Sizes, console: Console) -> None:
    """One table per backend: medians in events/s (D: ms per load), then cronica's ratios."""
    for backend in results.backends():
        header, *rows = table_rows(results, backend, sizes)
        table = Table(title=f"{backend}: median of runs, events/s (D: ms per load)")
        table.add_column(header[0], no_wrap=True)
        for name in header[1:]:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        render_targets(results.targets(backend, sizes), console)


def render_targets(targets: Iterable[Target], console: Console) -> None:
    for target in targets:
        verdict = {True: "[green]met[/green]", False: "[red]NOT met[/red]", None: "n/a"}[target.met]
        console.print(f"  {target.backend:<10} {target.name:<36} {target.measured:<30} {verdict}")


def markdown(results: Results, sizes: Sizes) -> str:
    """The same tables and targets in Markdown, for docs/benchmarks.md."""
    lines: list[str] = []
    for backend in results.backends():
        header, *rows = table_rows(results, backend, sizes)
        lines += [
            f"### {backend}",
            "",
            _md_row(header),
            _md_row(["---", *["---:"] * (len(header) - 1)]),
        ]
        lines += [_md_row(row) for row in rows]
        lines += ["", "| target | measured | met |", "| --- | ---: | --- |"]
        for target in results.targets(backend, sizes):
            verdict = {True: "yes", False: "**no**", None: "n/a"}[target.met]
            lines.append(_md_row([target.name, target.measured, verdict]))
        lines.append("")
    return "\n".join(lines)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def results_json(results: Results, sizes: Sizes) -> dict[str, Any]:
    """The figures, their medians, the ratios and the targets, for the JSON file."""
    titles = workload_titles(sizes)
    figures = []
    for (backend, workload, impl), cell in results.cells.items():
        entry: dict[str, Any] = {
            "backend": backend,
            "workload": workload,
            "title": titles.get(workload, workload),
            "implementation": impl,
            "events_per_second_runs": [round(f.events_per_second, 1) for f in cell.runs],
            "events_per_second_median": round(cell.rate, 1),
        }
        if cell.ms_per_load is not None:
            entry["ms_per_load_runs"] = [round(f.ms_per_load or 0.0, 3) for f in cell.runs]
            entry["ms_per_load_median"] = round(cell.ms_per_load, 3)
        figures.append(entry)
    ratios = [
        {
            "backend": backend,
            "workload": workload,
            **{
                f"cronica_vs_{other}": _round(results.ratio(backend, workload, other))
                for other in (RAW, RAW_SERIALISED, ES)
            },
        }
        for backend in results.backends()
        for workload in titles
        if (backend, workload, CRONICA) in results.cells
    ]
    targets = [
        {"backend": t.backend, "target": t.name, "measured": t.measured, "met": t.met}
        for backend in results.backends()
        for t in results.targets(backend, sizes)
    ]
    return {"figures": figures, "ratios": ratios, "targets": targets}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
