"""The asyncio API: the same store, awaited; concurrent coroutines share commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import cronica
from cronica import AsyncEventStore, ConcurrencyError, EventStore, NewEvent


def test_async_api_mirrors_the_sync_one(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    async def scenario() -> None:
        store = AsyncEventStore(make_store(backend))
        result = await store.append(
            "acc-1", [NewEvent("AccountCreated", {"owner": "Ana"})], "no_stream", "Account"
        )
        assert (result.from_version, result.to_version) == (1, 1)
        with pytest.raises(ConcurrencyError):
            await store.append("acc-1", [NewEvent("DepositMade", {})], cronica.NO_STREAM)
        events = await store.read_stream("acc-1")
        assert [e.event_type for e in events] == ["AccountCreated"]
        assert await store.read_all() == events
        assert (await store.stream_info("acc-1")).version == 1
        assert [s.aggregate_id for s in await store.list_streams("Account")] == ["acc-1"]
        assert (await store.status()).events == 1
        await store.close()

    asyncio.run(scenario())


def test_concurrent_coroutines_all_land(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    async def scenario() -> None:
        async with AsyncEventStore(make_store(backend)) as store:
            results = await asyncio.gather(
                *(store.append(f"s-{i}", [NewEvent("Tick", {"i": i})]) for i in range(200))
            )
            positions = [r.position for r in results]
            assert len(set(positions)) == 200
            assert len(await store.read_all()) == 200

    asyncio.run(scenario())


def test_connect_async_opens_by_url(tmp_path: object) -> None:
    async def scenario() -> None:
        store = await cronica.connect_async("memory://")
        await store.append("s", [NewEvent("A", {})])
        assert len(await store.read_all()) == 1
        await store.close()

    asyncio.run(scenario())
