"""Medians of the runs, the ratios, the targets, and the tables (rich, Markdown) and JSON."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from storebench.subjects import BackendName
from storebench.workloads import Figure
from writebench.common import WriteModelSizes

COMMANDS: Final = "commands"
CRONICA: Final = "cronica"
CRONICA_NO_SNAPSHOTS: Final = "cronica-no-snapshots"
RAW: Final = "raw"
ES: Final = "eventsourcing"
COMMAND_CONTENDERS: Final = (CRONICA, CRONICA_NO_SNAPSHOTS, RAW, ES)
COMMAND_TITLES: Final = {
    CRONICA: "cronica",
    CRONICA_NO_SNAPSHOTS: "cronica, no snapshots",
    RAW: "raw SQL",
    ES: "eventsourcing",
}

NONE: Final = "none"
HEAD: Final = "head"
BEHIND: Final = "behind"
LOAD_CONTENDERS: Final = (
    f"{CRONICA}/{NONE}",
    f"{CRONICA}/{HEAD}",
    f"{CRONICA}/{BEHIND}",
    f"{ES}/{NONE}",
    f"{ES}/{HEAD}",
)
BACKEND_TITLES: Final = {
    "sqlite": "SQLite (WAL, synchronous=FULL)",
    "postgresql": "PostgreSQL (fsync, synchronous_commit on)",
}
COMMAND_TARGET: Final = 2.0
"""The issue: the command round trip at least 2x eventsourcing's."""
SNAPSHOT_TARGET: Final = 1.5
"""Our reading of "about what a 100-event load costs": at most 1.5x its time."""


def load_workload(size: int) -> str:
    return f"load-{size}"


def load_titles(sizes: WriteModelSizes) -> dict[str, str]:
    lag = sizes.snapshot_lag
    return {
        f"{CRONICA}/{NONE}": "cronica: none",
        f"{CRONICA}/{HEAD}": "cronica: head",
        f"{CRONICA}/{BEHIND}": f"cronica: {lag} behind",
        f"{ES}/{NONE}": "es: none",
        f"{ES}/{HEAD}": "es: head",
    }


@dataclass(slots=True)
class Cell:
    runs: list[Figure] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(f.events_per_second for f in self.runs)

    @property
    def ms(self) -> float | None:
        values = [f.ms_per_load for f in self.runs if f.ms_per_load is not None]
        return statistics.median(values) if values else None


@dataclass(frozen=True, slots=True)
class Target:
    backend: BackendName
    name: str
    measured: str
    met: bool | None


class Results:
    """Figures by (backend, workload, contender): workload ``commands`` or ``load-N``."""

    def __init__(self) -> None:
        self.cells: dict[tuple[BackendName, str, str], Cell] = {}

    def add(self, backend: BackendName, workload: str, contender: str, figure: Figure) -> None:
        self.cells.setdefault((backend, workload, contender), Cell()).runs.append(figure)

    def backends(self) -> list[BackendName]:
        return list(dict.fromkeys(key[0] for key in self.cells))

    def rate(self, backend: BackendName, contender: str) -> float | None:
        cell = self.cells.get((backend, COMMANDS, contender))
        return cell.rate if cell is not None else None

    def ms(self, backend: BackendName, size: int, contender: str) -> float | None:
        cell = self.cells.get((backend, load_workload(size), contender))
        return cell.ms if cell is not None else None

    def command_ratio_runs(self, backend: BackendName, mine: str, other: str) -> list[float]:
        """The same ratio in each run (the contenders of a run ran side by side)."""
        a = self.cells.get((backend, COMMANDS, mine))
        b = self.cells.get((backend, COMMANDS, other))
        if a is None or b is None:
            return []
        pairs = zip(a.runs, b.runs, strict=True)
        return [x.events_per_second / y.events_per_second for x, y in pairs]

    def command_ratio(self, backend: BackendName, mine: str, other: str) -> float | None:
        """``mine``'s commands per second over ``other``'s (above 1: ``mine`` is faster)."""
        return _div(self.rate(backend, mine), self.rate(backend, other))

    def load_ratio(
        self, backend: BackendName, size: int, contender: str, base_size: int, base: str
    ) -> float | None:
        """The time of one load of ``contender`` over ``base``'s (below 1: faster)."""
        return _div(self.ms(backend, size, contender), self.ms(backend, base_size, base))

    def snapshot_ratios(self, backend: BackendName, sizes: WriteModelSizes) -> dict[str, Any]:
        """The largest aggregate loaded with a snapshot, over the smallest loaded without."""
        small, large = sizes.load_events[0], sizes.load_events[-1]
        none, head, behind = (f"{CRONICA}/{v}" for v in (NONE, HEAD, BEHIND))
        return {
            "small": small,
            "large": large,
            "head_over_small_none": self.load_ratio(backend, large, head, small, none),
            "behind_over_small_none": self.load_ratio(backend, large, behind, small, none),
            "head_over_small_head": self.load_ratio(backend, large, head, small, head),
            "none_over_head_large": self.load_ratio(backend, large, none, large, head),
        }

    def targets(self, backend: BackendName, sizes: WriteModelSizes) -> list[Target]:
        ratio = self.command_ratio(backend, CRONICA, ES)
        snap = self.snapshot_ratios(backend, sizes)
        head = snap["head_over_small_none"]
        return [
            Target(
                backend,
                f"commands >= {COMMAND_TARGET:g}x eventsourcing",
                _times(ratio),
                None if ratio is None else ratio >= COMMAND_TARGET,
            ),
            Target(
                backend,
                f"load {snap['large']:,} with snapshot ~ load {snap['small']:,}"
                f" (<= {SNAPSHOT_TARGET:g}x)",
                _times(head),
                None if head is None else head <= SNAPSHOT_TARGET,
            ),
        ]


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _rate(rate: float | None) -> str:
    return "" if rate is None else f"{rate:,.0f}"


def _ms(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms:,.2f}" if ms < 10 else f"{ms:,.1f}" if ms < 100 else f"{ms:,.0f}"


# -- tables ----------------------------------------------------------------------------------


def command_rows(results: Results) -> list[list[str]]:
    present = [c for c in COMMAND_CONTENDERS if any(k[2] == c for k in results.cells)]
    ratios = [(CRONICA, ES), (CRONICA_NO_SNAPSHOTS, ES), (CRONICA, RAW)]
    ratios = [(a, b) for a, b in ratios if a in present and b in present]
    header = [
        "backend",
        *(COMMAND_TITLES[c] for c in present),
        *(f"{_short(a)} / {_short(b)}" for a, b in ratios),
    ]
    rows = [header]
    for backend in results.backends():
        if not any(k[0] == backend and k[1] == COMMANDS for k in results.cells):
            continue
        rows.append(
            [
                BACKEND_TITLES[backend],
                *(_rate(results.rate(backend, c)) for c in present),
                *(_times(results.command_ratio(backend, a, b)) for a, b in ratios),
            ]
        )
    return rows


def command_run_lines(results: Results) -> list[str]:
    """cronica's ratio to eventsourcing in each run, to show how much it moves."""
    lines = []
    for backend in results.backends():
        for mine in (CRONICA, CRONICA_NO_SNAPSHOTS):
            ratios = results.command_ratio_runs(backend, mine, ES)
            if ratios:
                runs = ", ".join(_times(r) for r in ratios)
                lines.append(f"{backend}: {COMMAND_TITLES[mine]} / eventsourcing by run: {runs}")
    return lines


def _short(contender: str) -> str:
    return {CRONICA_NO_SNAPSHOTS: "cronica no-snap", ES: "es"}.get(contender, contender)


def load_rows(results: Results, backend: BackendName, sizes: WriteModelSizes) -> list[list[str]]:
    titles = load_titles(sizes)
    present = [
        c for c in LOAD_CONTENDERS if any(k[0] == backend and k[2] == c for k in results.cells)
    ]
    none, head = f"{CRONICA}/{NONE}", f"{CRONICA}/{HEAD}"
    extra = ["cronica none / head"]
    if f"{ES}/{NONE}" in present:
        extra += ["es / cronica: none", "es / cronica: head"]
    rows = [["events", *(titles[c] for c in present), *extra]]
    for size in sizes.load_events:
        row = [f"{size:,}", *(_ms(results.ms(backend, size, c)) for c in present)]
        row.append(_times(results.load_ratio(backend, size, none, size, head)))
        if f"{ES}/{NONE}" in present:
            row.append(_times(results.load_ratio(backend, size, f"{ES}/{NONE}", size, none)))
            row.append(_times(results.load_ratio(backend, size, f"{ES}/{HEAD}", size, head)))
        rows.append(row)
    return rows


def snapshot_lines(results: Results, backend: BackendName, sizes: WriteModelSizes) -> list[str]:
    snap = results.snapshot_ratios(backend, sizes)
    small, large, lag = snap["small"], snap["large"], sizes.snapshot_lag
    none_small = _ms(results.ms(backend, small, f"{CRONICA}/{NONE}"))
    head_large = _ms(results.ms(backend, large, f"{CRONICA}/{HEAD}"))
    behind_large = _ms(results.ms(backend, large, f"{CRONICA}/{BEHIND}"))
    return [
        f"{large:,} events, snapshot at head: {head_large} ms ="
        f" {_times(snap['head_over_small_none'])} the {small:,}-event load without snapshot"
        f" ({none_small} ms), {_times(snap['head_over_small_head'])} the {small:,}-event load"
        " with one",
        f"{large:,} events, snapshot {lag} behind: {behind_large} ms ="
        f" {_times(snap['behind_over_small_none'])} the {small:,}-event load without snapshot",
        f"{large:,} events without snapshot: {_times(snap['none_over_head_large'])} the time with"
        " one",
    ]


def render(results: Results, sizes: WriteModelSizes, console: Console) -> None:
    header, *rows = command_rows(results)
    table = Table(title="command round trip: commands/s (one event each), median of runs")
    for n, name in enumerate(header):
        table.add_column(name, justify="left" if n == 0 else "right", no_wrap=n == 0)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for line in command_run_lines(results):
        console.print(f"  {line}")
    for backend in results.backends():
        header, *rows = load_rows(results, backend, sizes)
        table = Table(
            title=f"{BACKEND_TITLES[backend]}: aggregate load, ms per load (median of runs);"
            " snapshot: none, at the head, or behind it"
        )
        for name in header:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        for line in snapshot_lines(results, backend, sizes):
            console.print(f"  {line}")
    for backend in results.backends():
        for target in results.targets(backend, sizes):
            verdict = {True: "[green]met[/green]", False: "[red]NOT met[/red]", None: "n/a"}
            console.print(
                f"  {backend:<10} {target.name:<50} {target.measured:>8}  {verdict[target.met]}"
            )


def markdown(results: Results, sizes: WriteModelSizes) -> str:
    """The same tables and targets in Markdown, for docs/benchmarks-write-model.md."""
    lines = ["### Command round trip (commands/s)", ""]
    lines += _md_table(command_rows(results))
    lines += [""] + [f"- {line}" for line in command_run_lines(results)]
    for backend in results.backends():
        lines += ["", f"### Aggregate load, {BACKEND_TITLES[backend]} (ms per load)", ""]
        lines += _md_table(load_rows(results, backend, sizes))
        lines += [""] + [f"- {line}" for line in snapshot_lines(results, backend, sizes)]
    lines += ["", "| backend | target | measured | met |", "| --- | --- | ---: | --- |"]
    for backend in results.backends():
        for target in results.targets(backend, sizes):
            verdict = {True: "yes", False: "**no**", None: "n/a"}[target.met]
            lines.append(_md_row([backend, target.name, target.measured, verdict]))
    return "\n".join(lines) + "\n"


def _md_table(rows: list[list[str]]) -> list[str]:
    header, *body = rows
    return [
        _md_row(header),
        _md_row(["---", *["---:"] * (len(header) - 1)]),
        *(_md_row(row) for row in body),
    ]


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


# -- JSON ------------------------------------------------------------------------------------


def results_json(results: Results, sizes: WriteModelSizes) -> dict[str, Any]:
    figures = []
    for (backend, workload, contender), cell in results.cells.items():
        entry: dict[str, Any] = {"backend": backend, "workload": workload, "contender": contender}
        if workload == COMMANDS:
            entry["commands_per_second_runs"] = [round(f.events_per_second, 1) for f in cell.runs]
            entry["commands_per_second_median"] = round(cell.rate, 1)
        else:
            entry["ms_per_load_runs"] = [round(f.ms_per_load or 0.0, 4) for f in cell.runs]
            entry["ms_per_load_median"] = round(cell.ms or 0.0, 4)
        figures.append(entry)
    ratios: list[dict[str, Any]] = []
    for backend in results.backends():
        ratios.append(
            {
                "backend": backend,
                "commands_cronica_vs_eventsourcing": _round(
                    results.command_ratio(backend, CRONICA, ES)
                ),
                "commands_cronica_no_snapshots_vs_eventsourcing": _round(
                    results.command_ratio(backend, CRONICA_NO_SNAPSHOTS, ES)
                ),
                "commands_cronica_vs_eventsourcing_runs": [
                    _round(r) for r in results.command_ratio_runs(backend, CRONICA, ES)
                ],
                "commands_cronica_no_snapshots_vs_eventsourcing_runs": [
                    _round(r) for r in results.command_ratio_runs(backend, CRONICA_NO_SNAPSHOTS, ES)
                ],
                "commands_cronica_vs_raw": _round(results.command_ratio(backend, CRONICA, RAW)),
                "snapshot": {
                    key: _round(value) if isinstance(value, float) else value
                    for key, value in results.snapshot_ratios(backend, sizes).items()
                },
                "load_time_eventsourcing_over_cronica": {
                    f"{size}/{variant}": _round(
                        results.load_ratio(
                            backend, size, f"{ES}/{variant}", size, f"{CRONICA}/{variant}"
                        )
                    )
                    for size in sizes.load_events
                    for variant in (NONE, HEAD)
                },
            }
        )
    targets = [
        {"backend": t.backend, "target": t.name, "measured": t.measured, "met": t.met}
        for backend in results.backends()
        for t in results.targets(backend, sizes)
    ]
    return {"figures": figures, "ratios": ratios, "targets": targets}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
