"""The seed's customer record (1.7.3): an event type whose schema changed.

``CustomerRegistered`` version 1 held the full name in ``name``; version 2 splits it into
``firstName`` and ``lastName`` and adds ``email`` (missing in old events: a default). Stored v1
events are never rewritten: the upcaster brings them to v2 on every read.

Run it: ``python -m cronica.examples.customers [--store URL]``.
"""

from __future__ import annotations

import argparse
from typing import Any

from cronica.aggregates import Aggregate
from cronica.errors import InvariantError
from cronica.event_types import DomainEvent, EventRegistry
from cronica.upcasting import Upcasters

__all__ = [
    "Customer",
    "CustomerEmailChanged",
    "CustomerRegistered",
    "customer_events",
    "customer_upcasters",
]

customer_events = EventRegistry()
customer_upcasters = Upcasters()


@customer_events.register(version=2)
class CustomerRegistered(DomainEvent):
    first_name: str
    last_name: str
    email: str | None = None


@customer_events.register
class CustomerEmailChanged(DomainEvent):
    email: str


@customer_upcasters.register("CustomerRegistered", from_version=1)
def split_name(data: dict[str, Any]) -> dict[str, Any]:
    """v1 ``{"name": "Juan Pérez"}`` -> v2 ``{"firstName": "Juan", "lastName": "Pérez"}``."""
    first, _, last = str(data.pop("name", "")).partition(" ")
    return {**data, "firstName": first, "lastName": last, "email": data.get("email")}


class Customer(Aggregate):
    first_name: str = ""
    last_name: str = ""
    email: str | None = None

    def register(self, first_name: str, last_name: str, email: str | None = None) -> None:
        if self.version:
            raise InvariantError(f"customer {self.id} is already registered")
        self.record(CustomerRegistered(first_name=first_name, last_name=last_name, email=email))

    def change_email(self, email: str) -> None:
        self.record(CustomerEmailChanged(email=email))

    def apply(self, event: object) -> None:
        match event:
            case CustomerRegistered(first_name=first, last_name=last, email=email):
                self.first_name, self.last_name, self.email = first, last, email
            case CustomerEmailChanged(email=email):
                self.email = email


def main(argv: list[str] | None = None) -> None:
    """A v1 event written by old code, read by today's code through the upcaster."""
    import uuid

    import cronica
    from cronica.repository import Repository

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--store", default="memory://", help="event store URL")
    args = parser.parse_args(argv)
    with cronica.connect(args.store, upcasters=customer_upcasters) as store:
        customer_id = f"client-{uuid.uuid4().hex[:8]}"
        # What the old code wrote, years ago: schema version 1.
        store.append(
            customer_id,
            [cronica.NewEvent("CustomerRegistered", {"name": "Juan Pérez"})],
            aggregate_type="Customer",
        )
        customers = Repository(store, Customer, customer_events)
        customers.execute(customer_id, lambda c: c.change_email("juan@example.com"))
        customer = customers.load(customer_id)
        print(f"{customer_id}: {customer.first_name} / {customer.last_name} / {customer.email}")
        print(f"as stored and read: {store.read_stream(customer_id)[0].data}")


if __name__ == "__main__":
    main()
