"""The seed's e-commerce order (1.8.2), a state machine guarded by its aggregate.

``CartCreated -> ProductAdded* -> OrderConfirmed -> PaymentMade -> OrderShipped ->
OrderDelivered``: products only go into an open cart, only a non-empty cart is confirmed, the
payment must cover the total exactly, nothing ships unpaid and nothing is delivered unshipped.

Run it: ``python -m cronica.examples.orders [--store URL]``.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from enum import StrEnum

from cronica.aggregates import Aggregate
from cronica.errors import InvariantError
from cronica.event_types import DomainEvent, EventRegistry
from cronica.examples._money import amount

__all__ = [
    "CartCreated",
    "Order",
    "OrderConfirmed",
    "OrderDelivered",
    "OrderShipped",
    "OrderStateError",
    "OrderStatus",
    "PaymentMade",
    "ProductAdded",
    "order_events",
]

order_events = EventRegistry()


@order_events.register
class CartCreated(DomainEvent):
    customer_id: str


@order_events.register
class ProductAdded(DomainEvent):
    product_id: str
    quantity: int
    unit_price: Decimal


@order_events.register
class OrderConfirmed(DomainEvent):
    total: Decimal


@order_events.register
class PaymentMade(DomainEvent):
    amount: Decimal
    payment_id: str


@order_events.register
class OrderShipped(DomainEvent):
    carrier: str
    tracking_code: str


@order_events.register
class OrderDelivered(DomainEvent):
    pass


class OrderStatus(StrEnum):
    NEW = "new"
    CART = "cart"
    CONFIRMED = "confirmed"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"


class OrderStateError(InvariantError):
    """A command that the order's current state does not allow."""


class Order(Aggregate):
    """An order, from cart to delivery."""

    status: OrderStatus = OrderStatus.NEW
    customer_id: str = ""
    lines: dict[str, int]
    total: Decimal = Decimal("0.00")
    paid: Decimal = Decimal("0.00")

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.lines = {}

    # -- commands ----------------------------------------------------------------------------

    def create_cart(self, customer_id: str) -> None:
        self._require(OrderStatus.NEW, "create a cart")
        self.record(CartCreated(customer_id=customer_id))

    def add_product(self, product_id: str, quantity: int, unit_price: Decimal | str) -> None:
        self._require(OrderStatus.CART, "add a product")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvariantError(f"quantity must be a positive integer, not {quantity!r}")
        price = amount(unit_price)
        self.record(ProductAdded(product_id=product_id, quantity=quantity, unit_price=price))

    def confirm(self) -> None:
        self._require(OrderStatus.CART, "confirm")
        if not self.lines:
            raise InvariantError("an empty cart cannot be confirmed")
        self.record(OrderConfirmed(total=self.total))

    def pay(self, value: Decimal | str, payment_id: str) -> None:
        self._require(OrderStatus.CONFIRMED, "pay")
        money = amount(value)
        if money != self.total:
            raise InvariantError(f"the payment {money} does not match the total {self.total}")
        self.record(PaymentMade(amount=money, payment_id=payment_id))

    def ship(self, carrier: str, tracking_code: str) -> None:
        self._require(OrderStatus.PAID, "ship")
        self.record(OrderShipped(carrier=carrier, tracking_code=tracking_code))

    def deliver(self) -> None:
        self._require(OrderStatus.SHIPPED, "deliver")
        self.record(OrderDelivered())

    def _require(self, status: OrderStatus, action: str) -> None:
        if self.status != status:
            raise OrderStateError(
                f"order {self.id} is {self.status.value}: cannot {action} (needs {status.value})"
            )

    # -- state -------------------------------------------------------------------------------

    def apply(self, event: object) -> None:
        match event:
            case CartCreated(customer_id=customer_id):
                self.customer_id = customer_id
                self.status = OrderStatus.CART
            case ProductAdded(product_id=product, quantity=quantity, unit_price=price):
                self.lines[product] = self.lines.get(product, 0) + quantity
                self.total += price * quantity
            case OrderConfirmed():
                self.status = OrderStatus.CONFIRMED
            case PaymentMade(amount=money):
                self.paid += money
                self.status = OrderStatus.PAID
            case OrderShipped():
                self.status = OrderStatus.SHIPPED
            case OrderDelivered():
                self.status = OrderStatus.DELIVERED


def main(argv: list[str] | None = None) -> None:
    """An order from cart to delivery, and an attempt to ship an unpaid one."""
    import uuid

    import cronica
    from cronica.repository import Repository

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--store", default="memory://", help="event store URL")
    args = parser.parse_args(argv)
    with cronica.connect(args.store) as store:
        orders = Repository(store, Order, order_events)
        order_id = f"order-{uuid.uuid4().hex[:8]}"
        orders.create(order_id, lambda o: o.create_cart("client-456"))
        orders.execute(order_id, lambda o: o.add_product("book-1", 2, "12.50"))
        orders.execute(order_id, lambda o: o.confirm())
        try:
            orders.execute(order_id, lambda o: o.ship("correos", "TRK-1"))
        except OrderStateError as exc:
            print(f"refused: {exc}")
        orders.execute(order_id, lambda o: o.pay("25.00", "pay-1"))
        orders.execute(order_id, lambda o: o.ship("correos", "TRK-1"))
        result = orders.execute(order_id, lambda o: o.deliver())
        order = result.aggregate
        print(f"{order_id}: {order.status.value}, total {order.total}, version {order.version}")


if __name__ == "__main__":
    main()
