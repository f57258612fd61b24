"""The seed's travel booking saga (1.5.2): flight, hotel, car; when the car fails, the hotel and
then the flight are cancelled.

Three services each keep their bookings as aggregates (a stream per trip and service):
``FlightBooked``/``FlightCancelled``, ``HotelBooked``/``HotelCancelled``, and ``CarBooked`` or
``CarBookingFailed`` (the rental company had no car: a refusal is a fact too). The
:class:`TripBooking` saga books them in that order and, when a booking fails, cancels what it
booked, newest first. It has a deadline: a trip not booked within ``timeout`` seconds (a service
that stays down) is given up and compensated the same way.

Run it: ``python -m cronica.examples.travel [--store URL]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Container

from cronica.aggregates import Aggregate
from cronica.errors import InvariantError
from cronica.event_types import DomainEvent, EventRegistry
from cronica.repository import CommandResult, Repository
from cronica.sagas import Saga, SagaRunner, Sagas, Step, StepFailedError
from cronica.store.base import EventStore

__all__ = [
    "CarBooked",
    "CarBooking",
    "CarBookingFailed",
    "FlightBooked",
    "FlightBooking",
    "FlightCancelled",
    "HotelBooked",
    "HotelBooking",
    "HotelCancelled",
    "TravelAgency",
    "TripBooking",
    "travel_events",
]

travel_events = EventRegistry()


@travel_events.register
class FlightBooked(DomainEvent):
    trip_id: str
    flight: str


@travel_events.register
class FlightCancelled(DomainEvent):
    trip_id: str


@travel_events.register
class HotelBooked(DomainEvent):
    trip_id: str
    hotel: str


@travel_events.register
class HotelCancelled(DomainEvent):
    trip_id: str


@travel_events.register
class CarBooked(DomainEvent):
    trip_id: str
    city: str


@travel_events.register
class CarBookingFailed(DomainEvent):
    trip_id: str
    city: str
    reason: str


class _Booking(Aggregate):
    """A booking with one service: booked once, cancelled at most once."""

    status: str = "new"

    def _check_new(self) -> None:
        if self.status != "new":
            raise InvariantError(f"booking {self.id} is {self.status}")

    def _check_booked(self) -> None:
        if self.status != "booked":
            raise InvariantError(f"booking {self.id} is {self.status}, not booked")


class FlightBooking(_Booking):
    def book(self, trip_id: str, flight: str) -> None:
        self._check_new()
        self.record(FlightBooked(trip_id=trip_id, flight=flight))

    def cancel(self, trip_id: str) -> None:
        self._check_booked()
        self.record(FlightCancelled(trip_id=trip_id))

    def apply(self, event: object) -> None:
        match event:
            case FlightBooked():
                self.status = "booked"
            case FlightCancelled():
                self.status = "cancelled"


class HotelBooking(_Booking):
    def book(self, trip_id: str, hotel: str) -> None:
        self._check_new()
        self.record(HotelBooked(trip_id=trip_id, hotel=hotel))

    def cancel(self, trip_id: str) -> None:
        self._check_booked()
        self.record(HotelCancelled(trip_id=trip_id))

    def apply(self, event: object) -> None:
        match event:
            case HotelBooked():
                self.status = "booked"
            case HotelCancelled():
                self.status = "cancelled"


class CarBooking(_Booking):
    def book(self, trip_id: str, city: str) -> None:
        self._check_new()
        self.record(CarBooked(trip_id=trip_id, city=city))

    def refuse(self, trip_id: str, city: str, reason: str) -> None:
        self._check_new()
        self.record(CarBookingFailed(trip_id=trip_id, city=city, reason=reason))

    def apply(self, event: object) -> None:
        match event:
            case CarBooked():
                self.status = "booked"
            case CarBookingFailed():
                self.status = "failed"


class TripBooking(Saga):
    """A trip: input ``flight``, ``hotel``, ``city``; booked within ten minutes or given up."""

    steps = ("flight", "hotel", "car")
    timeout = 600.0


class TravelAgency:
    """The three services and the saga that books a trip across them.

    ``has_cars`` says whether the rental company has a car in a city (the demo's stand-in for
    its inventory)."""

    def __init__(
        self, store: EventStore, has_cars: Callable[[str], bool] | Container[str] = ()
    ) -> None:
        self.store = store
        self.flights = Repository(store, FlightBooking, travel_events)
        self.hotels = Repository(store, HotelBooking, travel_events)
        self.cars = Repository(store, CarBooking, travel_events)
        self.has_cars: Callable[[str], bool] = (
            has_cars if callable(has_cars) else (lambda city: city in has_cars)
        )
        self.trips = Sagas(store, TripBooking)

    def steps(self) -> list[Step[TripBooking]]:
        return [
            Step("flight", self._book_flight, compensate=self._cancel_flight),
            Step("hotel", self._book_hotel, compensate=self._cancel_hotel),
            Step("car", self._book_car),
        ]

    def book(self, trip_id: str, flight: str, hotel: str, city: str) -> None:
        """Ask for a trip: the saga starts; a runner books it."""
        self.trips.begin(trip_id, {"flight": flight, "hotel": hotel, "city": city})

    def _book_flight(self, trip: TripBooking, key: str) -> CommandResult[FlightBooking]:
        return self.flights.create(
            f"flight-{trip.id}", lambda b: b.book(trip.id, trip.data["flight"]),
            idempotency_key=key,
        )  # fmt: skip

    def _cancel_flight(self, trip: TripBooking, key: str) -> CommandResult[FlightBooking]:
        return self.flights.execute(
            f"flight-{trip.id}", lambda b: b.cancel(trip.id), idempotency_key=key, retries=5
        )

    def _book_hotel(self, trip: TripBooking, key: str) -> CommandResult[HotelBooking]:
        return self.hotels.create(
            f"hotel-{trip.id}", lambda b: b.book(trip.id, trip.data["hotel"]),
            idempotency_key=key,
        )  # fmt: skip

    def _cancel_hotel(self, trip: TripBooking, key: str) -> CommandResult[HotelBooking]:
        return self.hotels.execute(
            f"hotel-{trip.id}", lambda b: b.cancel(trip.id), idempotency_key=key, retries=5
        )

    def _book_car(self, trip: TripBooking, key: str) -> CommandResult[CarBooking]:
        """Book a car, or record that there was none and fail the step. The refusal is stored
        under a key of its own: the step's key stays free for a booking, so the saga can fence
        it off when it records the failure."""
        city = trip.data["city"]
        booking = f"car-{trip.id}"
        if self.cars.earlier_run(booking, f"{key}/refused") is not None:
            raise StepFailedError(f"no car in {city}")  # refused before (then a crash)
        if self.has_cars(city):
            return self.cars.create(booking, lambda b: b.book(trip.id, city), idempotency_key=key)
        self.cars.create(
            booking, lambda b: b.refuse(trip.id, city, "no car available"),
            idempotency_key=f"{key}/refused",
        )  # fmt: skip
        raise StepFailedError(f"no car in {city}")


def main(argv: list[str] | None = None) -> None:
    """The seed's story: flight and hotel booked, no car in Lisbon, so both are cancelled."""
    import cronica
    from cronica.readmodels import read_models_for

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--store", default="memory://", help="event store URL")
    args = parser.parse_args(argv)
    with cronica.connect(args.store) as store, read_models_for(store) as timers:
        agency = TravelAgency(store, has_cars={"Madrid"})
        runner = SagaRunner(agency.trips, agency.steps(), timers=timers)
        for trip_id, city in (("trip-madrid", "Madrid"), ("trip-lisbon", "Lisbon")):
            if not store.read_stream(trip_id, limit=1):
                agency.book(trip_id, flight="IB3170", hotel="Hotel Central", city=city)
            trip = runner.drive(trip_id)
            assert trip is not None
            print(f"{trip_id}: {trip.status}" + (f" ({trip.reason})" if trip.reason else ""))
            for stream in (f"flight-{trip_id}", f"hotel-{trip_id}", f"car-{trip_id}"):
                types = [e.event_type for e in store.read_stream(stream)]
                print(f"  {stream}: {', '.join(types) or '-'}")


if __name__ == "__main__":
    main()
