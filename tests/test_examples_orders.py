"""The e-commerce order example (seed 1.8.2): a state machine guarded by its aggregate."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from cronica import EventStore, InvalidInputError, InvariantError, Repository
from cronica.examples._money import InvalidAmountError
from cronica.examples.orders import (
    CartCreated,
    Order,
    OrderConfirmed,
    OrderDelivered,
    OrderShipped,
    OrderStateError,
    OrderStatus,
    PaymentMade,
    ProductAdded,
    order_events,
)
from cronica.testing import AggregateScenario

Command = Callable[[Order], object]

ORDER = "order-1"
scenario = AggregateScenario(Order, ORDER)

CART = CartCreated(customer_id="client-456")
BOOKS = ProductAdded(product_id="book-1", quantity=2, unit_price=Decimal("12.50"))
CONFIRMED = OrderConfirmed(total=Decimal("25.00"))
PAID = PaymentMade(amount=Decimal("25.00"), payment_id="pay-1")
SHIPPED = OrderShipped(carrier="correos", tracking_code="TRK-1")
DELIVERED = OrderDelivered()

# The history that leaves an order in each state (a cart that holds a product).
HISTORY: dict[OrderStatus, tuple[object, ...]] = {
    OrderStatus.NEW: (),
    OrderStatus.CART: (CART, BOOKS),
    OrderStatus.CONFIRMED: (CART, BOOKS, CONFIRMED),
    OrderStatus.PAID: (CART, BOOKS, CONFIRMED, PAID),
    OrderStatus.SHIPPED: (CART, BOOKS, CONFIRMED, PAID, SHIPPED),
    OrderStatus.DELIVERED: (CART, BOOKS, CONFIRMED, PAID, SHIPPED, DELIVERED),
}

# Each command: the only state that allows it, the event it records there, the state after.
COMMANDS: dict[str, tuple[Command, OrderStatus, object, OrderStatus]] = {
    "create_cart": (
        lambda o: o.create_cart("client-456"),
        OrderStatus.NEW,
        CART,
        OrderStatus.CART,
    ),
    "add_product": (
        lambda o: o.add_product("pen-7", 3, "1.20"),
        OrderStatus.CART,
        ProductAdded(product_id="pen-7", quantity=3, unit_price=Decimal("1.20")),
        OrderStatus.CART,
    ),
    "confirm": (lambda o: o.confirm(), OrderStatus.CART, CONFIRMED, OrderStatus.CONFIRMED),
    "pay": (lambda o: o.pay("25.00", "pay-1"), OrderStatus.CONFIRMED, PAID, OrderStatus.PAID),
    "ship": (
        lambda o: o.ship("correos", "TRK-1"),
        OrderStatus.PAID,
        SHIPPED,
        OrderStatus.SHIPPED,
    ),
    "deliver": (lambda o: o.deliver(), OrderStatus.SHIPPED, DELIVERED, OrderStatus.DELIVERED),
}

WRONG_STATES = [
    pytest.param(status, name, id=f"{name}-when-{status.value}")
    for name, (_, allowed, _, _) in COMMANDS.items()
    for status in OrderStatus
    if status != allowed
]
RIGHT_STATES = [pytest.param(name, id=name) for name in COMMANDS]


def test_every_state_and_command_is_covered() -> None:
    assert set(HISTORY) == set(OrderStatus)
    assert len(WRONG_STATES) == len(COMMANDS) * (len(OrderStatus) - 1)
    for status, history in HISTORY.items():
        assert scenario.given(*history).aggregate.status == status


@pytest.mark.parametrize(("status", "name"), WRONG_STATES)
def test_a_command_in_the_wrong_state_is_refused_and_records_nothing(
    status: OrderStatus, name: str
) -> None:
    command, allowed, _, _ = COMMANDS[name]
    given = scenario.given(*HISTORY[status])
    given.when(command).then_raises(
        OrderStateError, match=f"is {status.value}: cannot .* \\(needs {allowed.value}\\)"
    )
    assert given.aggregate.status == status
    assert given.aggregate.version == len(HISTORY[status])


@pytest.mark.parametrize("name", RIGHT_STATES)
def test_a_command_in_its_state_records_its_event_and_moves_the_order_on(name: str) -> None:
    command, allowed, event, after = COMMANDS[name]
    order = scenario.given(*HISTORY[allowed]).when(command).then(event)
    assert order.status == after


def test_an_order_state_error_is_an_invariant_error() -> None:
    assert issubclass(OrderStateError, InvariantError)


# -- the rules within a state ------------------------------------------------------------------


def test_an_unpaid_order_cannot_be_shipped() -> None:
    scenario.given(*HISTORY[OrderStatus.CONFIRMED]).when(
        lambda o: o.ship("correos", "TRK-1")
    ).then_raises(OrderStateError, match="is confirmed: cannot ship")


def test_an_unshipped_order_cannot_be_delivered() -> None:
    scenario.given(*HISTORY[OrderStatus.PAID]).when(lambda o: o.deliver()).then_raises(
        OrderStateError, match="is paid: cannot deliver"
    )


@pytest.mark.parametrize("value", ["24.99", "25.01", "50.00", "0.01", Decimal("12.50")])
def test_a_payment_that_does_not_equal_the_total_is_refused(value: Decimal | str) -> None:
    given = scenario.given(*HISTORY[OrderStatus.CONFIRMED])
    given.when(lambda o: o.pay(value, "pay-1")).then_raises(
        InvariantError, match="does not match the total 25.00"
    )
    assert (given.aggregate.status, given.aggregate.paid) == (OrderStatus.CONFIRMED, Decimal(0))


@pytest.mark.parametrize("value", ["0", "-25.00", "NaN", "Infinity", "25.001"])
def test_a_payment_that_is_not_an_amount_is_refused(value: str) -> None:
    scenario.given(*HISTORY[OrderStatus.CONFIRMED]).when(
        lambda o: o.pay(value, "pay-1")
    ).then_raises(InvalidAmountError)


def test_a_payment_in_float_is_an_input_error() -> None:
    scenario.given(*HISTORY[OrderStatus.CONFIRMED]).when(
        lambda o: o.pay(25.0, "pay-1")  # type: ignore[arg-type]
    ).then_raises(InvalidInputError)


def test_a_payment_of_exactly_the_total_marks_the_order_paid() -> None:
    order = (
        scenario.given(*HISTORY[OrderStatus.CONFIRMED])
        .when(lambda o: o.pay(Decimal("25.00"), "pay-9"))
        .then(PaymentMade(amount=Decimal("25.00"), payment_id="pay-9"))
    )
    assert (order.status, order.paid, order.total) == (
        OrderStatus.PAID,
        Decimal("25.00"),
        Decimal("25.00"),
    )


def test_an_empty_cart_cannot_be_confirmed() -> None:
    given = scenario.given(CART)
    given.when(lambda o: o.confirm()).then_raises(InvariantError, match="empty cart")
    assert given.aggregate.status == OrderStatus.CART


@pytest.mark.parametrize("quantity", [0, -1, 1.5, 2.0, True, "2", None])
def test_a_quantity_that_is_not_a_positive_integer_is_refused(quantity: Any) -> None:
    given = scenario.given(CART)
    given.when(lambda o: o.add_product("book-1", quantity, "12.50")).then_raises(
        InvariantError, match="quantity must be a positive integer"
    )
    assert given.aggregate.lines == {}


@pytest.mark.parametrize("price", ["0", "-1.00", "NaN", "12.505"])
def test_a_unit_price_that_is_not_an_amount_is_refused(price: str) -> None:
    scenario.given(CART).when(lambda o: o.add_product("book-1", 1, price)).then_raises(
        InvalidAmountError
    )


def test_products_add_up_to_the_total_that_is_confirmed() -> None:
    def fill(order: Order) -> None:
        order.add_product("book-1", 2, "12.50")
        order.add_product("pen-7", 3, Decimal("1.20"))
        order.add_product("book-1", 1, "12.50")
        order.confirm()

    order = (
        scenario.given(CART)
        .when(fill)
        .then(
            BOOKS,
            ProductAdded(product_id="pen-7", quantity=3, unit_price=Decimal("1.20")),
            ProductAdded(product_id="book-1", quantity=1, unit_price=Decimal("12.50")),
            OrderConfirmed(total=Decimal("41.10")),
        )
    )
    assert order.lines == {"book-1": 3, "pen-7": 3}
    assert (order.total, order.status) == (Decimal("41.10"), OrderStatus.CONFIRMED)


def test_orders_do_not_share_their_lines() -> None:
    first = scenario.given(CART, BOOKS).aggregate
    second = scenario.given(CART).aggregate
    assert first.lines == {"book-1": 2}
    assert second.lines == {}


# -- through a repository, on every backend ----------------------------------------------------

HAPPY_PATH: list[Command] = [
    lambda o: o.create_cart("client-456"),
    lambda o: o.add_product("book-1", 2, "12.50"),
    lambda o: o.add_product("pen-7", 1, "3.00"),
    lambda o: o.confirm(),
    lambda o: o.pay("28.00", "pay-1"),
    lambda o: o.ship("correos", "TRK-1"),
    lambda o: o.deliver(),
]


def run_happy_path(orders: Repository[Order]) -> None:
    orders.create(ORDER, HAPPY_PATH[0])
    for command in HAPPY_PATH[1:]:
        orders.execute(ORDER, command)


def test_an_order_goes_from_cart_to_delivery_through_a_repository(store: EventStore) -> None:
    orders = Repository(store, Order, order_events)
    run_happy_path(orders)

    stored = store.read_stream(ORDER)
    assert [(e.event_type, e.data) for e in stored] == [
        ("CartCreated", {"customerId": "client-456"}),
        ("ProductAdded", {"productId": "book-1", "quantity": 2, "unitPrice": "12.50"}),
        ("ProductAdded", {"productId": "pen-7", "quantity": 1, "unitPrice": "3.00"}),
        ("OrderConfirmed", {"total": "28.00"}),
        ("PaymentMade", {"amount": "28.00", "paymentId": "pay-1"}),
        ("OrderShipped", {"carrier": "correos", "trackingCode": "TRK-1"}),
        ("OrderDelivered", {}),
    ]
    assert {e.aggregate_type for e in stored} == {"Order"}

    order = orders.load(ORDER)
    assert (order.status, order.version, order.customer_id) == (
        OrderStatus.DELIVERED,
        7,
        "client-456",
    )
    assert order.lines == {"book-1": 2, "pen-7": 1}
    assert (order.total, order.paid) == (Decimal("28.00"), Decimal("28.00"))


def test_loading_at_a_version_shows_the_status_then(store: EventStore) -> None:
    orders = Repository(store, Order, order_events)
    run_happy_path(orders)
    expected = [
        (OrderStatus.CART, Decimal("0.00")),
        (OrderStatus.CART, Decimal("25.00")),
        (OrderStatus.CART, Decimal("28.00")),
        (OrderStatus.CONFIRMED, Decimal("28.00")),
        (OrderStatus.PAID, Decimal("28.00")),
        (OrderStatus.SHIPPED, Decimal("28.00")),
        (OrderStatus.DELIVERED, Decimal("28.00")),
    ]
    for version, (status, total) in enumerate(expected, start=1):
        then = orders.load(ORDER, version=version)
        assert (then.version, then.status, then.total) == (version, status, total)
    assert orders.load(ORDER, version=99).status == OrderStatus.DELIVERED


def test_shipping_an_unpaid_order_through_a_repository_writes_nothing(store: EventStore) -> None:
    orders = Repository(store, Order, order_events)
    for command in HAPPY_PATH[:4]:
        if command is HAPPY_PATH[0]:
            orders.create(ORDER, command)
        else:
            orders.execute(ORDER, command)
    before = store.read_all()

    with pytest.raises(OrderStateError, match="cannot ship"):
        orders.execute(ORDER, lambda o: o.ship("correos", "TRK-1"))
    with pytest.raises(InvariantError, match="does not match the total"):
        orders.execute(ORDER, lambda o: o.pay("1.00", "pay-1"))
    with pytest.raises(OrderStateError):
        orders.execute(ORDER, lambda o: o.add_product("book-1", 1, "12.50"))

    assert store.read_all() == before
    assert orders.load(ORDER).status == OrderStatus.CONFIRMED


def test_the_example_script_refuses_to_ship_unpaid_and_delivers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cronica.examples import orders

    orders.main(["--store", "memory://"])
    out = capsys.readouterr().out
    assert "refused: order" in out
    assert "cannot ship" in out
    assert "delivered, total 25.00, version 6" in out
