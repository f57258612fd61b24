"""The timed sections. Setup (opening, populating, warm-up) is never timed.

- Commands: one thread runs command round trips (load the account, deposit, append one event)
  on the accounts in turn. Every contender runs the same number of commands, so its accounts'
  streams grow alike (a faster contender timed for a fixed time would load longer streams).
  The contenders take turns in ``COMMAND_SLICES`` slices, as the event store benchmark's write
  workloads do, so outside load on this shared machine hits them alike.
- Loads: each contender loads one aggregate, again and again, in slices taken in turn, until it
  has loaded for ``load_seconds`` in all and at least ``MIN_LOADS`` times; its figure is the
  median time of one load. Every load is checked (version and balance).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Protocol, TypeVar

from storebench.workloads import Figure

COMMAND_SLICES = 4
LOAD_SLICES = 5
MIN_LOADS = 3

Key = TypeVar("Key")


class CommandSubject(Protocol):
    """One implementation of the bank account on a fresh site, its accounts created."""

    def command(self) -> None:
        """One round trip: load the next account, deposit 10.00, append the event."""
        ...

    def total_balance(self) -> Decimal:
        """The sum of every account's balance, loaded (to check what the commands wrote)."""
        ...

    def close(self) -> None: ...


class CommandSection:
    """One contender's commands: counted, timed, checked afterwards."""

    def __init__(self, subject: CommandSubject, initial: Decimal, each: Decimal) -> None:
        self.subject = subject
        self.expected = initial
        self.each = each
        self.commands = 0
        self.seconds = 0.0
        subject.command()  # warm-up: connections, statement caches
        self.expected += each

    def run_slice(self, count: int) -> None:
        command = self.subject.command
        start = time.perf_counter()
        for _ in range(count):
            command()
        self.seconds += time.perf_counter() - start
        self.commands += count
        self.expected += count * self.each

    def check(self) -> None:
        """Every command's deposit must be stored: the balances add up."""
        total = self.subject.total_balance()
        if total != self.expected:
            raise RuntimeError(f"balances add up to {total}, expected {self.expected}")

    def figure(self) -> Figure:
        return Figure(self.commands / self.seconds)


def time_commands(sections: Mapping[Key, CommandSection], commands: int) -> dict[Key, Figure]:
    """Every section runs ``commands`` commands in all, taking turns; then the checks."""
    for n in range(COMMAND_SLICES):
        count = commands * (n + 1) // COMMAND_SLICES - commands * n // COMMAND_SLICES
        for section in sections.values():
            section.run_slice(count)
    for section in sections.values():
        section.check()
    return {key: section.figure() for key, section in sections.items()}


def time_loads(
    loads: Mapping[Key, Callable[[], None]], events: Mapping[Key, int], seconds: float
) -> dict[Key, Figure]:
    """Each contender loads in turn, one untimed warm-up load first; median time of one load.

    ``events`` is the size of each contender's aggregate (for the events/s figure).
    """
    for load in loads.values():
        load()
    timings: dict[Key, list[float]] = {key: [] for key in loads}
    step = seconds / LOAD_SLICES
    while True:
        pending = [
            key for key in loads if sum(timings[key]) < seconds or len(timings[key]) < MIN_LOADS
        ]
        if not pending:
            break
        for key in pending:
            load, taken = loads[key], timings[key]
            deadline = time.perf_counter() + step
            while True:
                began = time.perf_counter()
                load()
                now = time.perf_counter()
                taken.append(now - began)
                if now >= deadline:
                    break
    figures = {}
    for key, values in timings.items():
        median = statistics.median(values)
        figures[key] = Figure(events[key] / median, ms_per_load=median * 1000)
    return figures
