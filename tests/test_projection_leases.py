"""One active runner per projection: leases, fencing, and takeover when a runner dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

import cronica
from cronica import EventStore, NewEvent
from cronica.examples.bank_read_models import AccountsProjection, bank_projections
from cronica.projections import Projector
from cronica.readmodels import connect_read_models, read_models_for
from tests.conftest import POSTGRES_URL


def add_accounts(store: EventStore, count: int, start: int = 0) -> int:
    for i in range(start, start + count):
        store.append(
            f"acc-{i}",
            [NewEvent("AccountCreated", {"owner": f"O{i}"})],
            aggregate_type="BankAccount",
        )
    return store.head_position()


def test_a_second_runner_waits_while_the_lease_is_held(store: EventStore) -> None:
    add_accounts(store, 3)
    with read_models_for(store) as db:
        first = Projector(store, [AccountsProjection()], db, owner="elsewhere:1:a", lease_ttl=1.0)
        second = Projector(
            store, [AccountsProjection()], db, owner="elsewhere:2:b", takeover_interval=0.1
        )
        assert first.run_until_caught_up() == 3
        stale = first.catalog.records()  # what the first runner last saw: it holds the lease
        add_accounts(store, 2, start=3)
        assert second.run_once() == 0  # the first runner's lease is valid: hands off
        assert db.query("SELECT count(*) FROM accounts") == [(3,)]
        # The first runner stops renewing (a host that went away): its lease runs out.
        deadline = time.monotonic() + 10
        while second.run_once() == 0:
            assert time.monotonic() < deadline, "no takeover after the lease ran out"
            time.sleep(0.1)
        second.run_until_caught_up()
        assert db.query("SELECT count(*) FROM accounts") == [(5,)]
        # The first runner wakes from a long pause still believing it holds the lease: its
        # batch is rolled back by the checkpoint's lease check, not written twice.
        add_accounts(store, 1, start=5)
        first._renew_at["accounts"] = time.monotonic() + 60
        first.catalog.records = lambda: stale  # type: ignore[method-assign]
        assert first.run_once() == 0
        assert db.query("SELECT count(*) FROM accounts") == [(5,)]
        second.run_until_caught_up()
        assert db.query("SELECT count(*) FROM accounts") == [(6,)]
        second.close()
        first.close()


def holders(url: str) -> dict[str, str | None]:
    with connect_read_models(url) as db:
        if not db.table_exists("cronica_projections"):
            return {}
        rows = db.query("SELECT name, lease_owner FROM cronica_projections")
    return {name: owner for name, owner in rows}


def start_runner(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cronica", "projections", "run", "--store", url, "--lease-ttl", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_projector_processes_share_projections_and_take_over_from_a_dead_one(
    pg_schema_factory: Callable[[], str],
) -> None:
    url = f"{POSTGRES_URL}?schema={pg_schema_factory()}"
    names = {p.name for p in bank_projections()}
    with cronica.connect(url) as store:
        add_accounts(store, 50)
        runners = [start_runner(url), start_runner(url)]
        try:
            held = wait_until(
                lambda: (h := holders(url)) and set(h) == names and all(h.values()) and h,
                30,
                "every projection to have a runner",
            )
            pids = {int(owner.split(":")[1]) for owner in held.values()}
            assert pids <= {r.pid for r in runners}
            victim = next(r for r in runners if r.pid in pids)
            survivor = next(r for r in runners if r is not victim)
            killed_at = time.monotonic()
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            wait_until(
                lambda: all(
                    owner and int(owner.split(":")[1]) == survivor.pid
                    for owner in holders(url).values()
                ),
                15,
                "the survivor to take over every projection",
            )
            took_over_in = time.monotonic() - killed_at
            assert took_over_in < 10
            head = add_accounts(store, 20, start=50)
            with connect_read_models(url) as db:
                wait_until(
                    lambda: db.query("SELECT min(position) FROM cronica_projections")[0][0] >= head,
                    30,
                    "the survivor to project the new events",
                )
                assert db.query("SELECT count(*) FROM accounts") == [(70,)]
        finally:
            for runner in runners:
                if runner.poll() is None:
                    runner.send_signal(signal.SIGTERM)
                    runner.wait(timeout=20)
    assert all(r.returncode in (0, -signal.SIGKILL) for r in runners)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_stopped_runner_hands_its_lease_on_at_once(
    backend: str, make_store: Callable[..., EventStore]
) -> None:
    store = make_store(backend)
    add_accounts(store, 2)
    with read_models_for(store) as db:
        first = Projector(store, [AccountsProjection()], db, lease_ttl=60)
        first.run_until_caught_up()
        first.stop()
        second = Projector(store, [AccountsProjection()], db, lease_ttl=60)
        add_accounts(store, 1, start=2)
        assert second.run_until_caught_up() == 1
        second.close()


def test_a_background_projector_outlives_lost_connections(pg_schema: str) -> None:
    import psycopg

    from cronica.store.postgres import PostgresEventStore

    # Only this test's connections are cut: they carry an application name of their own.
    name = f"cronica_outage_{pg_schema}"
    store = PostgresEventStore(f"{POSTGRES_URL}?application_name={name}", schema=pg_schema)
    with store, Projector(store, [AccountsProjection()], lease_ttl=30).start() as projector:
        assert projector.wait_for(add_accounts(store, 2), timeout=10)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                [name],
            ).fetchone()
        assert killed is not None and killed[0] > 0
        head = 0
        for attempt in range(20):  # the store's own connections were cut too: retry
            try:
                head = add_accounts(store, 1, start=2 + attempt)
                break
            except cronica.StoreError:
                time.sleep(0.1)
        assert head, "the store did not recover"
        assert projector.wait_for(head, timeout=30), projector.last_error
        assert projector.last_error is not None  # it did meet the outage, and went on
        rows = projector.read_models.query("SELECT count(*) FROM accounts")
    assert rows[0][0] >= 3
