"""The seed's read models for orders: orders by status, and the count of pending orders.

- ``orders``: one row per order (customer, status, total), indexed by status.
- ``order_counts``: how many orders are in each status, kept as counters; its view
  ``pending_orders`` answers the seed's "how many orders are pending?" (confirmed or paid, not
  yet shipped). Asked as of a past moment with :func:`cronica.projections.projection_as_of`.
"""

from __future__ import annotations

from cronica.events import RecordedEvent
from cronica.examples.bank_read_models import cents
from cronica.projections.base import Projection, ProjectionWriter, on

PENDING_STATUSES = ("confirmed", "paid")

_STATUS_AFTER = {
    "CartCreated": "cart",
    "OrderConfirmed": "confirmed",
    "PaymentMade": "paid",
    "OrderShipped": "shipped",
    "OrderDelivered": "delivered",
}


class OrdersProjection(Projection):
    """``orders``: every order with its customer, status and total."""

    name = "orders"
    tables = {
        "orders": """
            CREATE TABLE {orders} (
                order_id    TEXT PRIMARY KEY,
                customer_id TEXT NOT NULL,
                status      TEXT NOT NULL,
                total_cents BIGINT NOT NULL,
                updated_at  TEXT NOT NULL
            );
            CREATE INDEX {orders}_by_status ON {orders} (status, order_id)""",
    }

    @on("CartCreated")
    def created(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        db.execute(
            "INSERT INTO {orders} VALUES (?, ?, 'cart', 0, ?)",
            [event.aggregate_id, event.data["customerId"], event.timestamp.isoformat()],
        )

    @on("ProductAdded")
    def product_added(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        line = cents(event.data["unitPrice"]) * int(event.data["quantity"])
        db.execute(
            "UPDATE {orders} SET total_cents = total_cents + ?, updated_at = ? WHERE order_id = ?",
            [line, event.timestamp.isoformat(), event.aggregate_id],
        )

    @on("OrderConfirmed", "PaymentMade", "OrderShipped", "OrderDelivered")
    def moved_on(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        db.execute(
            "UPDATE {orders} SET status = ?, updated_at = ? WHERE order_id = ?",
            [_STATUS_AFTER[event.event_type], event.timestamp.isoformat(), event.aggregate_id],
        )


class OrderCountsProjection(Projection):
    """``order_counts``: orders per status, and ``pending_orders``, the number confirmed or paid
    but not yet shipped."""

    name = "order_counts"
    tables = {
        "order_status_totals": """
            CREATE TABLE {order_status_totals} (
                status TEXT PRIMARY KEY,
                orders BIGINT NOT NULL
            )""",
        "order_current_status": """
            CREATE TABLE {order_current_status} (
                order_id TEXT PRIMARY KEY,
                status   TEXT NOT NULL
            )""",
    }
    views = {
        "order_status_counts": "SELECT status, orders FROM {order_status_totals}",
        "pending_orders": "SELECT coalesce(sum(orders), 0) AS pending"
        " FROM {order_status_totals} WHERE status IN ('confirmed', 'paid')",
    }

    @on(*_STATUS_AFTER)
    def moved_on(self, db: ProjectionWriter, event: RecordedEvent) -> None:
        status = _STATUS_AFTER[event.event_type]
        before = db.query(
            "SELECT status FROM {order_current_status} WHERE order_id = ?", [event.aggregate_id]
        )
        if before:
            self._count(db, before[0][0], -1)
        db.execute(
            "INSERT INTO {order_current_status} VALUES (?, ?)"
            " ON CONFLICT (order_id) DO UPDATE SET status = excluded.status",
            [event.aggregate_id, status],
        )
        self._count(db, status, 1)

    def _count(self, db: ProjectionWriter, status: str, delta: int) -> None:
        db.execute(
            "INSERT INTO {order_status_totals} VALUES (?, ?)"
            " ON CONFLICT (status) DO UPDATE SET orders = {order_status_totals}.orders + ?",
            [status, delta, delta],
        )


def order_projections() -> list[Projection]:
    """The orders' projections: ``orders`` and ``order_counts``."""
    return [OrdersProjection(), OrderCountsProjection()]
