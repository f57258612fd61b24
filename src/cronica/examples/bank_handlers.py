"""The seed's event handlers for the bank (1.4.5): notifications, an audit log, analytics.

Event handlers react to events with side effects, where projections keep read models. Each one
here is a callable taking a :class:`~cronica.events.RecordedEvent`, the handler API of both
buses (:class:`~cronica.bus.log_consumer.LogConsumer` in process,
:class:`~cronica.bus.redis_consumer.StreamConsumer` on Redis), and writes to tables of a
read-model database. Delivery is at least once, so each de-duplicates by event id: acting twice
on one event changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from cronica.events import RecordedEvent, format_timestamp
from cronica.examples.bank_read_models import BANK_ACCOUNTS, cents, money
from cronica.readmodels.base import ReadModelDatabase

LARGE_WITHDRAWAL_CENTS = 100_000
"""Withdrawals of 1,000.00 or more are notified."""


class Notifications:
    """Tells account holders of large withdrawals and of a closed account (one row per message
    in ``notifications``: what a mailer would send)."""

    group = "notifications"

    def __init__(self, db: ReadModelDatabase) -> None:
        self.db = db
        with db.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS notifications (event_id TEXT PRIMARY KEY,"
                " account_id TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL,"
                " at TEXT NOT NULL)"
            )

    def __call__(self, event: RecordedEvent) -> None:
        if event.aggregate_type not in BANK_ACCOUNTS:
            return
        if event.event_type == "WithdrawalMade":
            amount = cents(event.data["amount"])
            if amount < LARGE_WITHDRAWAL_CENTS:
                return
            kind, message = "large_withdrawal", f"{money(amount)} was withdrawn"
        elif event.event_type == "AccountClosed":
            kind, message = "account_closed", "your account is closed"
        else:
            return
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO notifications VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [str(event.event_id), event.aggregate_id, kind, message,
                 format_timestamp(event.timestamp)],
            )  # fmt: skip


class AuditLog:
    """Who did what, when and why, one row per event of the bank (``audit_log``)."""

    group = "audit-log"

    def __init__(self, db: ReadModelDatabase) -> None:
        self.db = db
        with db.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS audit_log (event_id TEXT PRIMARY KEY,"
                " position BIGINT NOT NULL, account_id TEXT NOT NULL, event_type TEXT NOT NULL,"
                " actor TEXT, reason TEXT, correlation_id TEXT, at TEXT NOT NULL)"
            )

    def __call__(self, event: RecordedEvent) -> None:
        if event.aggregate_type not in BANK_ACCOUNTS:
            return
        meta = event.metadata
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [str(event.event_id), event.position, event.aggregate_id, event.event_type,
                 meta.get("actor"), meta.get("reason"), meta.get("correlationId"),
                 format_timestamp(event.timestamp)],
            )  # fmt: skip


class Analytics:
    """Real-time counters: per day and event type, how many and how much
    (``analytics_daily``); ``analytics_seen`` keeps the events already counted."""

    group = "analytics"

    def __init__(self, db: ReadModelDatabase) -> None:
        self.db = db
        with db.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS analytics_daily (day TEXT NOT NULL,"
                " event_type TEXT NOT NULL, events BIGINT NOT NULL, amount_cents BIGINT NOT NULL,"
                " PRIMARY KEY (day, event_type))"
            )
            tx.execute("CREATE TABLE IF NOT EXISTS analytics_seen (event_id TEXT PRIMARY KEY)")

    def __call__(self, event: RecordedEvent) -> None:
        if event.aggregate_type not in BANK_ACCOUNTS:
            return
        amount = cents(event.data["amount"]) if "amount" in event.data else 0
        day = format_timestamp(event.timestamp)[:10]
        with self.db.transaction() as tx:
            fresh = tx.execute(
                "INSERT INTO analytics_seen VALUES (?) ON CONFLICT DO NOTHING",
                [str(event.event_id)],
            )
            if fresh != 1:
                return  # counted already (a redelivery)
            tx.execute(
                "INSERT INTO analytics_daily VALUES (?, ?, 1, ?) ON CONFLICT (day, event_type)"
                " DO UPDATE SET events = analytics_daily.events + 1,"
                " amount_cents = analytics_daily.amount_cents + excluded.amount_cents",
                [day, event.event_type, amount],
            )


def bank_handlers(db: ReadModelDatabase) -> list[tuple[str, Callable[[RecordedEvent], None]]]:
    """The seed's handlers, as (consumer group, handler) pairs."""
    return [(h.group, h) for h in (Notifications(db), AuditLog(db), Analytics(db))]
