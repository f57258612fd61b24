"""The timed sections. Setup (opening, warm-up, populating) is never timed.

- A: one writer, one event per append, at the exact expected version each time.
- B: n writers in threads (one shared store or application; one connection each for the raw
  baseline), one event per append, each writer to its own stream.
- C: one writer appending batches of ``Sizes.batch`` events to one stream.
- D: load one stream of ``Sizes.stream_events`` events, decoded (read_stream), again and again.
- E: read the whole global log of ``Sizes.log_events`` events in pages, decoded into objects.

The machine is shared, so the contenders of one workload take turns in short slices rather than
one after the other: a burst of outside load then hits all of them alike, and their ratios hold.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from storebench.subjects import Sizes, Subject, Writer

READ_STREAM = "stream-d"
WRITE_SLICES = 4
"""Slices each write section is cut into (so each contender runs ``seconds / 4`` at a time)."""
MIN_READ_ROUNDS = 3

Key = TypeVar("Key")


@dataclass(frozen=True, slots=True)
class Figure:
    """One run's result: a rate, and for loads the median time of one load."""

    events_per_second: float
    ms_per_load: float | None = None


class WriteSection:
    """``writers`` writers of one subject, warmed up, appending ``batch`` events per append."""

    def __init__(self, subject: Subject, writers: int, batch: int) -> None:
        self.batch = batch
        self.writers: list[Writer] = []
        try:
            for n in range(writers):
                writer = subject.writer(f"writer-{n}")
                self.writers.append(writer)
                writer.append(1)  # creates the stream, opens connections
        except BaseException:
            self.close()
            raise
        self.events = 0
        self.seconds = 0.0

    def run_slice(self, seconds: float) -> None:
        """Append for ``seconds``; add what was appended and how long it took."""
        if len(self.writers) == 1:
            appends, elapsed = _run_inline(self.writers[0], self.batch, seconds)
        else:
            appends, elapsed = _run_threads(self.writers, self.batch, seconds)
        self.events += appends * self.batch
        self.seconds += elapsed

    def figure(self) -> Figure:
        return Figure(self.events / self.seconds)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def time_writes(sections: Mapping[Key, WriteSection], seconds: float) -> dict[Key, Figure]:
    """Workloads A, B and C: every section appends for ``seconds`` in all, taking turns."""
    for _ in range(WRITE_SLICES):
        for section in sections.values():
            section.run_slice(seconds / WRITE_SLICES)
    return {key: section.figure() for key, section in sections.items()}


def _run_inline(writer: Writer, batch: int, seconds: float) -> tuple[int, float]:
    appends = 0
    start = now = time.perf_counter()
    deadline = start + seconds
    while now < deadline:
        writer.append(batch)
        appends += 1
        now = time.perf_counter()
    return appends, now - start


def _run_threads(writers: list[Writer], batch: int, seconds: float) -> tuple[int, float]:
    counts = [0] * len(writers)
    errors: list[BaseException] = []
    ready = threading.Barrier(len(writers) + 1)
    stop = threading.Event()

    def run(index: int, writer: Writer) -> None:
        ready.wait()
        try:
            while not stop.is_set():
                writer.append(batch)
                counts[index] += 1
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=run, args=(index, writer), daemon=True)
        for index, writer in enumerate(writers)
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def populate(subject: Subject, sizes: Sizes) -> None:
    """Setup for D and E: the D stream, then streams of one batch each up to the log's size.

    Every append carries ``sizes.batch`` events, the way workload C writes.
    """
    writer = subject.writer(READ_STREAM)
    try:
        for _ in range(sizes.stream_events // sizes.batch):
            writer.append(sizes.batch)
    finally:
        writer.close()
    for n in range((sizes.log_events - sizes.stream_events) // sizes.batch):
        writer = subject.writer(f"stream-{n}")
        try:
            writer.append(sizes.batch)
        finally:
            writer.close()


def time_loads(
    loads: Mapping[Key, Callable[[str], int]], expected: int, seconds: float
) -> dict[Key, Figure]:
    """Workload D: each contender loads the D stream in turn; median time of one load each."""
    timings = _take_turns(loads, lambda load: load(READ_STREAM), expected, seconds)
    figures = {}
    for key, values in timings.items():
        median = statistics.median(values)
        figures[key] = Figure(expected / median, ms_per_load=median * 1000)
    return figures


def time_log(subjects: Mapping[Key, Subject], sizes: Sizes) -> dict[Key, Figure]:
    """Workload E: whole passes over the global log, each contender in turn."""
    timings = _take_turns(
        subjects,
        lambda subject: subject.read_log(sizes.page_size),
        sizes.log_events,
        sizes.seconds,
    )
    return {
        key: Figure(len(values) * sizes.log_events / sum(values)) for key, values in timings.items()
    }


Contender = TypeVar("Contender")


def _take_turns(
    contenders: Mapping[Key, Contender],
    read: Callable[[Contender], int],
    expected: int,
    seconds: float,
) -> dict[Key, list[float]]:
    """Rounds in which every contender reads once, until each had about ``seconds`` in all.

    One untimed warm-up read each first; at least ``MIN_READ_ROUNDS`` rounds.
    """
    for contender in contenders.values():
        _check_count(read(contender), expected)
    timings: dict[Key, list[float]] = {key: [] for key in contenders}
    wall = seconds * len(contenders)
    start = time.perf_counter()
    rounds = 0
    while rounds < MIN_READ_ROUNDS or time.perf_counter() - start < wall:
        for key, contender in contenders.items():
            began = time.perf_counter()
            count = read(contender)
            timings[key].append(time.perf_counter() - began)
            _check_count(count, expected)
        rounds += 1
    return timings


def _check_count(count: int, expected: int) -> None:
    if count != expected:
        raise RuntimeError(f"a read returned {count} events, expected {expected}")
