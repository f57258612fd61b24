"""Projections: read models that follow the log, fail loudly, rebuild behind a view."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

import cronica
from cronica import EventStore, NewEvent, RecordedEvent
from cronica.errors import (
    InvalidInputError,
    ProjectionNotFoundError,
    ProjectionStateError,
)
from cronica.examples.bank import BankAccount, bank_events
from cronica.examples.bank_read_models import (
    AccountsProjection,
    ActiveAccountsProjection,
    TransactionsProjection,
    bank_projections,
)
from cronica.examples.order_read_models import order_projections
from cronica.examples.orders import Order, order_events
from cronica.projections import (
    Catalog,
    Projection,
    ProjectionWriter,
    Projector,
    on,
    projection_as_of,
    projection_status,
)
from cronica.readmodels import connect_read_models, read_models_for
from tests.conftest import POSTGRES_URL, require_postgres


def open_accounts(store: EventStore, count: int, deposits: int = 2) -> None:
    repository = cronica.Repository(store, BankAccount, bank_events, snapshots=None)
    for i in range(count):
        account = BankAccount(f"acc-{i}")
        account.open(f"Owner {i}")
        for _ in range(deposits):
            account.deposit("10.00")
        if i % 3 == 0:
            account.withdraw(str(10 * deposits) + ".00")
        repository.save(account)


@pytest.fixture
def projector(store: EventStore) -> Iterator[Callable[..., Projector]]:
    """``make(projections, **options)``: projectors that share one read-model database, the
    store's own (for the memory store, one in-memory database, as a restarted process would
    find its SQLite file or PostgreSQL schema)."""
    made: list[Projector] = []
    db = read_models_for(store)

    def make(projections: list[Projection] | None = None, **options: Any) -> Projector:
        p = Projector(store, projections or bank_projections(), db, **options)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
    db.close()


def rows(projector: Projector, sql: str) -> list[tuple[Any, ...]]:
    return sorted(projector.read_models.query(sql))


# -- the bank's read models -------------------------------------------------------------------


def test_bank_read_models_follow_the_log(store: EventStore, projector: Any) -> None:
    open_accounts(store, 4)
    p = projector()
    assert p.run_until_caught_up() == store.count_events()
    assert rows(p, "SELECT account_id, owner, balance_cents, version FROM accounts") == [
        ("acc-0", "Owner 0", 0, 4),
        ("acc-1", "Owner 1", 2000, 3),
        ("acc-2", "Owner 2", 2000, 3),
        ("acc-3", "Owner 3", 0, 4),
    ]
    assert rows(p, "SELECT account_id, balance_cents FROM active_accounts") == [
        ("acc-1", 2000),
        ("acc-2", 2000),
    ]
    movements = p.read_models.query(
        "SELECT type, direction, amount_cents FROM transactions WHERE account_id = 'acc-0'"
        " ORDER BY position"
    )
    assert movements == [
        ("deposit", "in", 1000),
        ("deposit", "in", 1000),
        ("withdrawal", "out", 2000),
    ]


def test_a_projector_picks_up_where_it_stopped(store: EventStore, projector: Any) -> None:
    open_accounts(store, 2)
    first = projector()
    first.run_until_caught_up()
    first.close()
    open_accounts_more = cronica.Repository(store, BankAccount, bank_events, snapshots=None)
    open_accounts_more.execute("acc-1", lambda a: a.deposit("5.00"))
    second = projector()
    assert second.run_until_caught_up() == 1
    assert rows(second, "SELECT balance_cents FROM accounts WHERE account_id = 'acc-1'") == [
        (2500,)
    ]


def test_order_read_models_count_pending_orders(store: EventStore, projector: Any) -> None:
    repository = cronica.Repository(store, Order, order_events, snapshots=None)
    for i, steps in enumerate(["", "c", "cp", "cps", "cpsd", "cp"]):
        order = Order(f"order-{i}")
        order.create_cart(f"customer-{i}")
        order.add_product("book", 2, "12.50")
        if "c" in steps:
            order.confirm()
        if "p" in steps:
            order.pay("25.00", f"pay-{i}")
        if "s" in steps:
            order.ship("post", f"T{i}")
        if "d" in steps:
            order.deliver()
        repository.save(order)
    p = projector(order_projections())
    p.run_until_caught_up()
    assert rows(p, "SELECT status, count(*) FROM orders GROUP BY status") == [
        ("cart", 1),
        ("confirmed", 1),
        ("delivered", 1),
        ("paid", 2),
        ("shipped", 1),
    ]
    assert p.read_models.query("SELECT pending FROM pending_orders") == [(3,)]
    assert rows(p, "SELECT status, orders FROM order_status_counts WHERE orders > 0") == [
        ("cart", 1),
        ("confirmed", 1),
        ("delivered", 1),
        ("paid", 2),
        ("shipped", 1),
    ]
    assert rows(p, "SELECT DISTINCT total_cents FROM orders") == [(2500,)]


# -- failures: stop, record, resume, skip ------------------------------------------------------


class FragileAccounts(Projection):
    """Raises on deposits of exactly 13.00 while ``broken`` is set."""

    name = "fragile"
    tables: ClassVar = {"fragile": "CREATE TABLE {fragile} (account_id TEXT PRIMARY KEY, n INT)"}
    broken = True

    @on("AccountCreated")
    def created(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        db.write("INSERT INTO {fragile} VALUES (?, 0)", [event.aggregate_id])

    @on("DepositMade")
    def deposited(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        if self.broken and event.data["amount"] == "13.00":
            raise RuntimeError("unlucky deposit")
        # Queued writes: a failure must not let them leak past the rollback.
        db.write("UPDATE {fragile} SET n = n + 1 WHERE account_id = ?", [event.aggregate_id])


def deposit_events(store: EventStore, amounts: list[str]) -> list[int]:
    store.append(
        "acc-f", [NewEvent("AccountCreated", {"owner": "F"})], aggregate_type="BankAccount"
    )
    return [
        store.append("acc-f", [NewEvent("DepositMade", {"amount": a})]).position for a in amounts
    ]


def test_a_failing_handler_stops_its_projection_at_the_event(
    store: EventStore, projector: Any
) -> None:
    positions = deposit_events(store, ["1.00", "2.00", "13.00", "4.00"])
    fragile = FragileAccounts()
    p = projector([fragile, *bank_projections()])
    p.run_until_caught_up()
    [status] = projection_status(store, p.read_models, ["fragile"])
    assert status.state == "failed"
    assert status.failed_position == positions[2]
    assert status.failed_event_type == "DepositMade"
    assert status.error == "RuntimeError: unlucky deposit"
    # The events before the failing one are applied and checkpointed; nothing after it.
    assert status.position == positions[1]
    assert p.read_models.query("SELECT n FROM fragile") == [(2,)]
    # The other projections went on to the end.
    accounts = projection_status(store, p.read_models, ["accounts"])[0]
    assert accounts.position == positions[-1] and accounts.state != "failed"
    # Running again does not skip the event: still failed, still at the same place.
    p.run_until_caught_up()
    assert p.read_models.query("SELECT n FROM fragile") == [(2,)]


def test_after_a_fix_a_failed_projection_resumes_from_the_failed_event(
    store: EventStore, projector: Any
) -> None:
    positions = deposit_events(store, ["1.00", "13.00", "4.00"])
    fragile = FragileAccounts()
    first = projector([fragile])
    first.run_until_caught_up()
    first.close()
    fragile.broken = False  # the fix is deployed: a new projector process starts
    p = projector([fragile])
    p.run_until_caught_up()
    [status] = projection_status(store, p.read_models, ["fragile"])
    assert status.state == "live" and status.position == positions[-1]
    assert p.read_models.query("SELECT n FROM fragile") == [(3,)]


def test_retry_is_an_operator_action_for_a_running_projector(
    store: EventStore, projector: Any
) -> None:
    deposit_events(store, ["13.00", "4.00"])
    fragile = FragileAccounts()
    p = projector([fragile])
    p.run_until_caught_up()
    fragile.broken = False
    p.run_until_caught_up()
    assert p.read_models.query("SELECT n FROM fragile") == [(0,)]  # failed stays failed
    p.catalog.retry("fragile", actor="ops", reason="handler fixed")
    p.run_until_caught_up()
    assert p.read_models.query("SELECT n FROM fragile") == [(2,)]
    [action] = p.catalog.actions("fragile")
    assert (action.action, action.actor, action.reason) == ("retry", "ops", "handler fixed")
    with pytest.raises(ProjectionStateError):
        p.catalog.retry("fragile", actor="ops", reason="again")


def test_skipping_the_failed_event_is_recorded_and_never_applies_it(
    store: EventStore, projector: Any
) -> None:
    positions = deposit_events(store, ["1.00", "13.00", "4.00"])
    p = projector([FragileAccounts()])
    p.run_until_caught_up()
    with pytest.raises(ProjectionNotFoundError):
        p.catalog.skip("accounts", actor="ops", reason="x")  # never ran here
    p.catalog.skip("fragile", actor="alice", reason="bad amount, refunded by hand")
    p.run_until_caught_up()
    assert p.read_models.query("SELECT n FROM fragile") == [(2,)]
    [action] = p.catalog.actions("fragile")
    assert action.action == "skip"
    assert action.position == positions[1]
    assert action.event_type == "DepositMade"
    assert (action.actor, action.reason) == ("alice", "bad amount, refunded by hand")
    with pytest.raises(ProjectionStateError):
        p.catalog.skip("fragile", actor="alice", reason="nothing failed")


def test_operator_actions_name_unknown_projections(store: EventStore, projector: Any) -> None:
    p = projector()
    with pytest.raises(ProjectionNotFoundError):
        p.catalog.retry("nope", actor="ops", reason="")
    with pytest.raises(ProjectionNotFoundError):
        projection_status(store, p.read_models, ["nope"])
    with pytest.raises(ProjectionNotFoundError):
        p.wait_for(1, timeout=0, names=["nope"])


def test_queued_writes_keep_their_order_with_queries_and_other_statements(
    store: EventStore,
) -> None:
    with read_models_for(store) as db, db.transaction() as tx:
        tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)")
        writer = ProjectionWriter(tx, {"t": "t"})
        for k in range(5):
            writer.write("INSERT INTO {t} VALUES (?, 0)", [k])
        assert writer.query("SELECT count(*) FROM {t}") == [(5,)]  # a query sends them first
        writer.write("UPDATE {t} SET v = v + 1", [])
        assert writer.execute("UPDATE {t} SET v = v * 10 WHERE k < ?", [2]) == 2
        writer.write("UPDATE {t} SET v = v + 1", [])
        writer.discard()  # dropped, as on a rollback
        writer.flush()
        assert tx.query("SELECT k, v FROM t ORDER BY k") == [
            (0, 10),
            (1, 10),
            (2, 1),
            (3, 1),
            (4, 1),
        ]


@pytest.mark.parametrize("rows", [3, 40])  # few: plain statements; many: COPY and unnest
def test_queued_inserts_and_updates_merge_per_key_and_keep_their_order(
    store: EventStore, rows: int
) -> None:
    with read_models_for(store) as db:
        with db.transaction() as tx:
            tx.execute("CREATE TABLE t__g1 (k TEXT PRIMARY KEY, v BIGINT, label TEXT)")
        with db.transaction() as tx:
            writer = ProjectionWriter(tx, {"t": "t__g1"})
            for k in range(rows):
                writer.insert("t", {"k": f"k{k}", "v": k, "label": "new"})
            for k in range(rows):
                writer.update("t", ("k", f"k{k}"), add={"v": 100})
            for k in range(rows):  # merged per key: one change per row
                writer.update("t", ("k", f"k{k}"), set={"label": "x"}, add={"v": 1})
                writer.update("t", ("k", f"k{k}"), set={"label": f"l{k}"}, add={"v": 1})
            writer.update("t", ("k", "missing"), add={"v": 1})  # no such row: left alone
            assert writer.query("SELECT count(*) FROM {t} WHERE label = 'new'") == [(0,)]
            writer.write("DELETE FROM {t} WHERE k = ?", ["k0"])
            writer.insert("t", {"k": "k0", "v": -1, "label": "again"})
            writer.flush()
        got = sorted(db.query("SELECT k, v, label FROM t__g1"))
    expected = sorted([(f"k{k}", k + 102, f"l{k}") for k in range(1, rows)] + [("k0", -1, "again")])
    assert got == expected


TRICKY_TEXT = ['"', "\\", "{a,b}", "NULL", "", " spaced ", "ñandú 🦤", "it's", 'a\\"b', None]


def test_batched_updates_carry_any_text_exactly(store: EventStore) -> None:
    keys = [f"key {i}: {text}" for i, text in enumerate(TRICKY_TEXT)] + ['"', "\\", "NULL", ""]
    with read_models_for(store) as db:
        with db.transaction() as tx:
            tx.execute("CREATE TABLE t__g1 (k TEXT PRIMARY KEY, v BIGINT, label TEXT)")
            tx.insert_rows("t__g1", ["k", "v", "label"], [(k, 0, "old") for k in keys])
        with db.transaction() as tx:
            writer = ProjectionWriter(tx, {"t": "t__g1"})
            for i, k in enumerate(keys):
                label = TRICKY_TEXT[i % len(TRICKY_TEXT)]
                writer.update("t", ("k", k), set={"label": label}, add={"v": -(2**40) + i})
            writer.flush()
        got = sorted(db.query("SELECT k, v, label FROM t__g1"))
    expected = sorted(
        (k, -(2**40) + i, TRICKY_TEXT[i % len(TRICKY_TEXT)]) for i, k in enumerate(keys)
    )
    assert got == expected


# -- rebuilds --------------------------------------------------------------------------------


def test_a_rebuild_fills_a_new_generation_while_queries_keep_answering(
    store: EventStore, projector: Any
) -> None:
    open_accounts(store, 30)
    p = projector([AccountsProjection()], batch_size=10)
    p.run_until_caught_up()
    before = rows(p, "SELECT * FROM accounts")
    p.catalog.request_rebuild("accounts", actor="ops", reason="test")
    p.run_once()  # starts the rebuild and applies its first batch
    time.sleep(0.05)  # so the rebuild has a measurable rate for its ETA
    status = projection_status(store, p.read_models, ["accounts"])[0]
    assert status.rebuild is not None and status.rebuild.generation == 2
    assert 0 < status.rebuild.events_done < status.rebuild.events_total
    assert status.rebuild.eta_seconds is not None
    assert rows(p, "SELECT * FROM accounts") == before  # the view still shows generation 1
    partial = p.read_models.query("SELECT count(*) FROM accounts__g2")[0][0]
    assert 0 < partial < 30
    p.run_until_caught_up()
    status = projection_status(store, p.read_models, ["accounts"])[0]
    assert status.rebuild is None and status.generation == 2
    assert rows(p, "SELECT * FROM accounts") == before
    assert not p.read_models.table_exists("accounts__g1")
    assert [a.action for a in p.catalog.actions("accounts")] == ["rebuild"]


def test_a_rebuild_keeps_up_with_events_appended_meanwhile(
    store: EventStore, projector: Any
) -> None:
    open_accounts(store, 10)
    p = projector([AccountsProjection()], batch_size=5)
    p.run_until_caught_up()
    p.catalog.request_rebuild("accounts", actor="ops", reason="test")
    p.run_once()
    cronica.Repository(store, BankAccount, bank_events, snapshots=None).execute(
        "acc-1", lambda a: a.deposit("1.00")
    )
    p.run_until_caught_up()
    assert projection_status(store, p.read_models, ["accounts"])[0].generation == 2
    assert rows(p, "SELECT balance_cents FROM accounts WHERE account_id = 'acc-1'") == [(2100,)]


class AccountsV2(AccountsProjection):
    """A new version of ``accounts`` that also counts movements."""

    version = 2
    tables: ClassVar = {
        "accounts": "CREATE TABLE {accounts} (account_id TEXT PRIMARY KEY, owner TEXT,"
        " balance_cents BIGINT, status TEXT, version INT, movements INT)",
    }

    @on("AccountCreated")
    def created(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        db.execute(
            "INSERT INTO {accounts} VALUES (?, ?, 0, 'open', ?, 0)",
            [event.aggregate_id, event.data["owner"], event.version],
        )

    def _move(self, db: ProjectionWriter, event: RecordedEvent, delta: int) -> None:
        super()._move(db, event, delta)
        db.execute(
            "UPDATE {accounts} SET movements = movements + 1 WHERE account_id = ?",
            [event.aggregate_id],
        )


def test_a_new_version_rebuilds_by_itself_and_switches_when_caught_up(
    store: EventStore, projector: Any
) -> None:
    open_accounts(store, 12)
    projector([AccountsProjection()]).close()
    first = projector([AccountsProjection()])
    first.run_until_caught_up()
    first.close()
    p = projector([AccountsV2()], batch_size=7)
    p.run_once()
    # Until the new generation has caught up, queries see the old one (no movements column).
    columns = p.read_models.query("SELECT * FROM accounts LIMIT 1")[0]
    assert len(columns) == 5
    p.run_until_caught_up()
    status = projection_status(store, p.read_models, ["accounts"])[0]
    assert (status.version, status.generation, status.rebuild) == (2, 2, None)
    assert rows(
        p, "SELECT account_id, movements FROM accounts WHERE account_id IN ('acc-0', 'acc-1')"
    ) == [
        ("acc-0", 3),
        ("acc-1", 2),
    ]


def test_a_new_projection_backfills_from_zero(store: EventStore, projector: Any) -> None:
    open_accounts(store, 5)
    first = projector([AccountsProjection()])
    first.run_until_caught_up()
    first.close()
    p = projector([AccountsProjection(), TransactionsProjection()])
    p.run_until_caught_up()
    assert p.read_models.query("SELECT count(*) FROM transactions") == [(12,)]


class OwnersProjection(Projection):
    """Accounts by owner, with a unique index (a constraint) and a plain one."""

    name = "owners"
    tables: ClassVar = {
        "owners": """
            CREATE TABLE {owners} (account_id TEXT PRIMARY KEY, owner TEXT NOT NULL);
            CREATE UNIQUE INDEX {owners}_unique ON {owners} (owner, account_id);
            CREATE INDEX {owners}_by_owner ON {owners} (owner)""",
    }

    @on("AccountCreated")
    def created(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        db.insert("owners", {"account_id": event.aggregate_id, "owner": event.data["owner"]})


def index_names(projector: Projector, table: str) -> set[str]:
    db = projector.read_models
    if db.dialect == "sqlite":
        found = db.query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", [table]
        )
    else:
        found = db.query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename = ?",
            [table],
        )
    return {name for (name,) in found}


def test_plain_indexes_wait_until_a_generation_filled_from_zero_has_caught_up(
    store: EventStore, projector: Any
) -> None:
    open_accounts(store, 6)
    first = projector([OwnersProjection()], batch_size=2, catch_up_batch_size=2)
    first.run_once()
    assert index_names(first, "owners__g1") >= {"owners__g1_unique"}
    assert "owners__g1_by_owner" not in index_names(first, "owners__g1")
    first.close()  # a restart half-way: the next projector adds the index once caught up
    p = projector([OwnersProjection()], batch_size=2, catch_up_batch_size=2)
    p.run_until_caught_up()
    assert "owners__g1_by_owner" in index_names(p, "owners__g1")
    p.catalog.request_rebuild("owners", actor="ops", reason="test")
    p.run_once()
    assert "owners__g2_by_owner" not in index_names(p, "owners__g2")
    p.run_until_caught_up()
    assert projection_status(store, p.read_models, ["owners"])[0].generation == 2
    assert "owners__g2_by_owner" in index_names(p, "owners__g2")
    assert rows(p, "SELECT count(*) FROM owners") == [(6,)]


def test_an_unnamed_index_is_created_with_its_table(
    make_store: Callable[..., EventStore],
) -> None:
    """PostgreSQL names an unnamed index itself (SQLite requires names)."""
    require_postgres()
    store = make_store("postgresql")

    class Unnamed(Projection):
        name = "unnamed"
        tables: ClassVar = {
            "owners": "CREATE TABLE {owners} (account_id TEXT PRIMARY KEY, owner TEXT);"
            " CREATE INDEX ON {owners} (owner)"
        }

        @on("AccountCreated")
        def created(self, db: ProjectionWriter, event: RecordedEvent) -> None:
            db.insert("owners", {"account_id": event.aggregate_id, "owner": event.data["owner"]})

    open_accounts(store, 3)
    with Projector(store, [Unnamed()]) as p:
        p.run_until_caught_up()
        assert len(index_names(p, "owners__g1")) == 2  # the primary key's and the unnamed one


def test_a_projection_can_keep_its_indexes_while_it_is_filled(
    store: EventStore, projector: Any
) -> None:
    class Looked(OwnersProjection):
        defer_indexes = False

    open_accounts(store, 6)
    p = projector([Looked()], batch_size=2, catch_up_batch_size=2)
    p.run_once()
    assert "owners__g1_by_owner" in index_names(p, "owners__g1")


def test_projections_must_not_share_names_or_tables(store: EventStore) -> None:
    with pytest.raises(InvalidInputError, match="two projections"):
        Projector(store, [AccountsProjection(), AccountsProjection()])

    class Clash(Projection):
        name = "clash"
        tables: ClassVar = {"accounts": "CREATE TABLE {accounts} (x INT)"}

    with pytest.raises(InvalidInputError, match="both claim"):
        Projector(store, [AccountsProjection(), Clash()])
    with pytest.raises(InvalidInputError):

        class BadName(Projection):
            name = "Bad-Name"
            tables: ClassVar = {"t": "CREATE TABLE {t} (x INT)"}


# -- status, read-your-writes, as of ----------------------------------------------------------


def test_catching_up_reads_larger_pages_and_live_reads_small_ones(
    store: EventStore, projector: Any
) -> None:
    open_accounts(store, 4)
    assert store.count_events() == 14
    p = projector([AccountsProjection()], batch_size=3, catch_up_batch_size=8)
    assert [p.run_once() for _ in range(4)] == [3, 8, 3, 0]
    for i in range(5):
        store.append(f"new-{i}", [NewEvent("AccountCreated", {"owner": "N"})])
    assert p.run_once() == 3  # live again: a normal page first
    with pytest.raises(InvalidInputError):
        projector([AccountsProjection()], catch_up_batch_size=0)


def test_catch_up_pages_stay_small_only_when_the_read_models_share_the_stores_sqlite_file(
    tmp_path: Path,
) -> None:
    with cronica.connect(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with Projector(store, bank_projections(), batch_size=100) as shared:
            assert shared.catch_up_batch_size == 100  # the store's appends need the write lock
        other = connect_read_models(f"sqlite:///{tmp_path / 'models.db'}")
        with Projector(store, bank_projections(), other, batch_size=100) as apart:
            assert apart.catch_up_batch_size == 10_000
        other.close()


def test_status_reports_position_lag_and_state(store: EventStore, projector: Any) -> None:
    open_accounts(store, 3)
    p = projector([AccountsProjection()], batch_size=4)
    p.run_once()
    [status] = projection_status(store, p.read_models)
    assert status.state == "catching_up"
    assert status.lag_events == store.count_events() - 4
    assert status.lag_seconds >= 0
    assert status.runner == p.owner
    p.run_until_caught_up()
    [status] = projection_status(store, p.read_models)
    assert (status.state, status.lag_events, status.lag_seconds) == ("live", 0, 0.0)
    assert status.to_dict()["name"] == "accounts"
    p.stop()
    assert projection_status(store, p.read_models)[0].state == "stopped"


def test_wait_for_returns_once_the_read_model_reached_the_position(
    store: EventStore, projector: Any
) -> None:
    p = projector()
    p.run_until_caught_up()
    p.start()
    repository = cronica.Repository(store, BankAccount, bank_events, snapshots=None)
    account = BankAccount("acc-w")
    account.open("W")
    account.deposit("7.00")
    result = repository.save(account)
    assert p.wait_for(result.position, timeout=10)
    assert rows(p, "SELECT balance_cents FROM accounts WHERE account_id = 'acc-w'") == [(700,)]
    p.stop()
    later = repository.execute("acc-w", lambda a: a.deposit("1.00"))
    assert not p.wait_for(later.position, timeout=0.2)


def test_a_query_process_waits_for_the_read_model_through_the_catalog(
    store: EventStore, projector: Any
) -> None:
    p = projector()
    p.run_until_caught_up()
    p.start()
    with (
        read_models_for(store)
        if store.backend_name != "memory"
        else nullcontext(p.read_models) as query_side
    ):  # another connection set, as an API process has
        catalog = Catalog(query_side)
        position = store.append(
            "acc-q", [NewEvent("AccountCreated", {"owner": "Q"})], aggregate_type="BankAccount"
        ).position
        assert catalog.wait_for(position, timeout=10, names=["accounts", "transactions"])
        assert query_side.query("SELECT owner FROM accounts WHERE account_id = 'acc-q'") == [("Q",)]
        p.stop()
        later = store.append("acc-q", [NewEvent("DepositMade", {"amount": "1.00"})]).position
        assert not catalog.wait_for(later, timeout=0.1, names=["accounts"])
        with pytest.raises(ProjectionNotFoundError):
            catalog.wait_for(later, timeout=0.1, names=["nope"])


def test_a_projection_as_of_a_past_moment_leaves_the_live_model_alone(
    store: EventStore, projector: Any
) -> None:
    repository = cronica.Repository(store, Order, order_events, snapshots=None)
    marks = []
    for i in range(4):
        order = Order(f"o-{i}")
        order.create_cart("c")
        order.add_product("p", 1, "5.00")
        order.confirm()
        position = repository.save(order).position
        assert position is not None
        marks.append(position)

    def pay_and_ship(order: Order) -> None:
        order.pay("5.00", "x")
        order.ship("post", "T")

    shipped = repository.execute("o-0", pay_and_ship)
    p = projector(order_projections())
    p.run_until_caught_up()
    counts = order_projections()[1]
    with projection_as_of(store, counts, position=marks[1]) as past:
        assert past.query("SELECT pending FROM pending_orders") == [(2,)]
    moment = store.read_all(after=marks[2] - 1, limit=1)[0].timestamp
    with projection_as_of(store, counts, timestamp=moment) as past:
        assert past.query("SELECT pending FROM pending_orders") == [(3,)]
    with projection_as_of(store, counts, timestamp=moment - timedelta(days=7)) as past:
        assert past.query("SELECT pending FROM pending_orders") == [(0,)]
    assert p.read_models.query("SELECT pending FROM pending_orders") == [(3,)]
    assert shipped.position == store.head_position()
    with pytest.raises(InvalidInputError):
        projection_as_of(store, counts)


# -- where read models live -------------------------------------------------------------------


@pytest.mark.parametrize("target", ["sqlite", "postgresql"])
def test_read_models_can_live_in_another_database(
    target: str, tmp_path: Path, pg_schema_factory: Callable[[], str]
) -> None:
    if target == "postgresql":
        require_postgres()
        url = f"{POSTGRES_URL}?schema={pg_schema_factory()}"
    else:
        url = f"sqlite:///{tmp_path / 'read.db'}"
    with cronica.connect(f"sqlite:///{tmp_path / 'events.db'}") as store:
        open_accounts(store, 2)
        with connect_read_models(url) as db, Projector(store, bank_projections(), db) as p:
            p.run_until_caught_up()
            assert sorted(db.query("SELECT account_id FROM accounts")) == [("acc-0",), ("acc-1",)]


def test_stopping_an_idle_projector_does_not_wait_out_its_idle_wait(
    store: EventStore, projector: Any
) -> None:
    p = projector(idle_wait=60.0)
    p.start()
    time.sleep(0.2)  # caught up, now waiting for events
    asked = time.monotonic()
    p.stop()
    assert time.monotonic() - asked < 5.0  # far below idle_wait


def test_the_projector_runs_in_the_background(store: EventStore, projector: Any) -> None:
    p = projector([ActiveAccountsProjection()]).start()
    open_accounts(store, 3)
    assert p.wait_for(store.head_position(), timeout=10)
    assert rows(p, "SELECT account_id FROM active_accounts") == [("acc-1",), ("acc-2",)]
