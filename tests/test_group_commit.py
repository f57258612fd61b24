"""Group commit: concurrent single-event appends share transactions, each caller its own answer."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest

from cronica import ConcurrencyError, EventStore, NewEvent
from cronica.store._group_commit import GroupCommitter


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_appends_share_transactions(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    store = make_store(backend)
    threads, appends = 16, 40
    barrier = threading.Barrier(threads)
    results: list[int] = []
    lock = threading.Lock()

    def write(index: int) -> None:
        barrier.wait()
        for n in range(appends):
            result = store.append(f"s-{index}", [NewEvent("Tick", {"n": n})], n)
            with lock:
                results.append(result.position)

    workers = [threading.Thread(target=write, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    committer = store._committer  # type: ignore[attr-defined]
    assert committer.requests == threads * appends
    assert committer.batches < committer.requests * 0.8, "appends did not share transactions"
    assert len(set(results)) == threads * appends
    assert len(store.read_all()) == threads * appends


def test_each_caller_of_a_batch_gets_its_own_outcome() -> None:
    seen: list[list[int]] = []
    release = threading.Event()

    def execute(batch: Sequence[int]) -> list[int | Exception]:
        release.wait()
        seen.append(list(batch))
        return [ConcurrencyError("s", n, 0) if n % 2 else n * 10 for n in batch]

    committer: GroupCommitter[int, int | Exception] = GroupCommitter(execute)
    outcomes: dict[int, int | Exception] = {}

    def call(n: int) -> None:
        outcomes[n] = committer.submit(n)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    while committer.requests < 1:  # the first caller leads alone; the others queue behind it
        pass
    release.set()
    for thread in threads:
        thread.join()
    assert sorted(n for batch in seen for n in batch) == list(range(6))
    assert len(seen) < 6
    for n in range(6):
        outcome = outcomes[n]
        assert isinstance(outcome, ConcurrencyError) if n % 2 else outcome == n * 10


def test_a_failing_batch_raises_in_every_caller_and_the_committer_recovers() -> None:
    calls = 0

    def execute(batch: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return list(batch)

    committer: GroupCommitter[int, int] = GroupCommitter(execute)
    with pytest.raises(OSError, match="disk full"):
        committer.submit(1)
    assert committer.submit(2) == 2


def test_batches_respect_the_weight_limit() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def execute(batch: Sequence[int]) -> list[int]:
        gate.wait()
        sizes.append(sum(batch))
        return list(batch)

    committer: GroupCommitter[int, int] = GroupCommitter(execute, max_weight=10)
    threads = [
        threading.Thread(target=committer.submit, args=(4,), kwargs={"weight": 4}) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    while committer.requests < 1:
        pass
    gate.set()
    for thread in threads:
        thread.join()
    assert sum(sizes) == 24
    assert max(sizes) <= 10 or sizes[0] == 4
