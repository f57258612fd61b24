"""The seed's travel booking saga (1.5.2): flight, hotel, car; the car fails, so the hotel and
then the flight are cancelled, in that order in the log."""

from __future__ import annotations

import pytest

from cronica import EventStore
from cronica.examples import travel
from cronica.examples.travel import TravelAgency
from cronica.readmodels import read_models_for
from cronica.sagas import SagaRunner


def run_trip(store: EventStore, city: str) -> tuple[str, list[tuple[int, str]]]:
    agency = TravelAgency(store, has_cars={"Madrid"})
    with read_models_for(store) as timers:
        runner = SagaRunner(agency.trips, agency.steps(), timers=timers)
        agency.book("trip-1", flight="IB3170", hotel="Hotel Central", city=city)
        trip = runner.drive("trip-1")
    assert trip is not None
    events = sorted(
        (event.position, event.event_type)
        for stream in ("flight-trip-1", "hotel-trip-1", "car-trip-1")
        for event in store.read_stream(stream)
    )
    return trip.status, events


def test_no_car_cancels_the_hotel_then_the_flight(store: EventStore) -> None:
    status, events = run_trip(store, "Lisbon")
    assert status == "compensated"
    assert [event_type for _, event_type in events] == [
        "FlightBooked", "HotelBooked", "CarBookingFailed", "HotelCancelled", "FlightCancelled",
    ]  # fmt: skip
    saga = [e.event_type for e in store.read_stream("trip-1")]
    assert saga == [
        "SagaStarted", "SagaStepCompleted", "SagaStepCompleted", "SagaStepFailed",
        "SagaStepCompensated", "SagaStepCompensated", "SagaCompensated",
    ]  # fmt: skip


def test_with_a_car_the_trip_is_booked(store: EventStore) -> None:
    status, events = run_trip(store, "Madrid")
    assert status == "completed"
    assert [event_type for _, event_type in events] == ["FlightBooked", "HotelBooked", "CarBooked"]


def test_the_bookings_carry_the_trip_as_correlation_id(store: EventStore) -> None:
    run_trip(store, "Lisbon")
    for stream in ("flight-trip-1", "hotel-trip-1", "car-trip-1"):
        for event in store.read_stream(stream):
            assert event.metadata["correlationId"] == "trip-1"
            assert event.metadata["actor"] == "saga:TripBooking"


def test_the_script_tells_the_story(capsys: pytest.CaptureFixture[str]) -> None:
    travel.main([])
    out = capsys.readouterr().out
    assert "trip-madrid: completed" in out
    assert "trip-lisbon: compensated (car: no car in Lisbon)" in out
    assert "hotel-trip-lisbon: HotelBooked, HotelCancelled" in out
