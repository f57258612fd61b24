"""Exactly-once in effect: a projector killed with SIGKILL at random points, many times, under a
steady stream of appends, leaves read models equal to a rebuild from zero."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cronica
from cronica import NewEvent
from cronica.examples.bank_read_models import bank_projections
from cronica.projections import Projector
from cronica.readmodels import connect_read_models
from tests.conftest import POSTGRES_URL

KILLS = 15
QUERIES = {
    "accounts": "SELECT account_id, owner, balance_cents, status, version FROM accounts",
    "transactions": "SELECT position, event_id, account_id, type, direction, amount_cents,"
    " counterparty, timestamp FROM transactions",
    "active_accounts": "SELECT account_id, owner, balance_cents FROM active_accounts",
}


class SteadyWriter(threading.Thread):
    """Appends bank events (new accounts, deposits, withdrawals, transfers) until stopped."""

    def __init__(self, store: cronica.EventStore) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.stopped = threading.Event()
        self.accounts: list[str] = []
        self.appended = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(7)
        try:
            while not self.stopped.is_set():
                self._one(rng)
                self.appended += 1
                time.sleep(0.002)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _one(self, rng: random.Random) -> None:
        amount = f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}"
        if len(self.accounts) < 5 or rng.random() < 0.1:
            account = f"acc-{uuid.uuid4().hex[:8]}"
            self.store.append(
                account,
                [NewEvent("AccountCreated", {"owner": f"Owner {len(self.accounts)}"})],
                aggregate_type="BankAccount",
            )
            self.accounts.append(account)
            return
        account = rng.choice(self.accounts)
        kind = rng.choice(["DepositMade", "WithdrawalMade", "transfer"])
        if kind != "transfer":
            self.store.append(account, [NewEvent(kind, {"amount": amount})])
            return
        other = rng.choice(self.accounts)
        transfer = uuid.uuid4().hex
        self.store.append(
            account,
            [NewEvent("TransferSent", {"transferId": transfer, "to": other, "amount": amount})],
        )
        self.store.append(
            other,
            [
                NewEvent(
                    "TransferReceived", {"transferId": transfer, "from": account, "amount": amount}
                )
            ],
        )


def projector_command(store_url: str) -> list[str]:
    return [
        sys.executable, "-m", "cronica", "projections", "run", "--store", store_url,
        "--batch-size", "20",
    ]  # fmt: skip


def lowest_checkpoint(store_url: str) -> int:
    """The position every projection has reached (0 before the projector made its tables)."""
    with connect_read_models(store_url) as db:
        if not db.table_exists("cronica_projections"):
            return 0
        rows = db.query("SELECT min(position) FROM cronica_projections")
        return int(rows[0][0] or 0)


def wait_for_progress(store_url: str, since: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while lowest_checkpoint(store_url) <= since:
        assert time.monotonic() < deadline, "the projector applied nothing"
        time.sleep(0.05)


def snapshot(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {name: sorted(db.query(sql)) for name, sql in QUERIES.items()}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_read_models_survive_sigkill_and_equal_a_rebuild_from_zero(
    backend: str, tmp_path: Path, pg_schema_factory: Callable[[], str]
) -> None:
    if backend == "sqlite":
        store_url = f"sqlite:///{tmp_path / 'events.db'}"
        rebuild_url = f"sqlite:///{tmp_path / 'rebuild.db'}"
    else:
        store_url = f"{POSTGRES_URL}?schema={pg_schema_factory()}"
        rebuild_url = f"{POSTGRES_URL}?schema={pg_schema_factory()}"
    rng = random.Random(11)
    with cronica.connect(store_url) as store:
        writer = SteadyWriter(store)
        writer.start()
        positions: list[int] = []
        try:
            for _ in range(KILLS):
                process = subprocess.Popen(
                    projector_command(store_url),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                # Until this run has applied something (start-up is slow on a busy machine),
                # then a random moment further: a kill in mid-stream.
                wait_for_progress(store_url, positions[-1] if positions else 0)
                time.sleep(rng.uniform(0.0, 0.6))
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                positions.append(lowest_checkpoint(store_url))
        finally:
            writer.stopped.set()
            writer.join(timeout=10)
        assert writer.error is None, writer.error
        assert writer.appended > 200
        # Work happened between kills, and the killed runs were interrupted mid-stream.
        assert len(set(positions)) > KILLS // 2
        assert positions[-1] < store.head_position()
        finish = subprocess.run(
            [*projector_command(store_url), "--until-caught-up"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert finish.returncode == 0, finish.stderr
        with connect_read_models(store_url) as db:
            survived = snapshot(db)
        with (
            connect_read_models(rebuild_url) as fresh_db,
            Projector(store, bank_projections(), fresh_db) as fresh,
        ):
            fresh.run_until_caught_up()
            rebuilt = snapshot(fresh_db)
    assert sum(len(rows) for rows in rebuilt.values()) > 200
    for name in QUERIES:
        assert survived[name] == rebuilt[name], f"{name} differs from a rebuild from zero"
