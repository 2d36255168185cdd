"""Service scheduling with CP-SAT: capacity, stock, before the window, near the vehicle."""

from __future__ import annotations

import pytest

from drivetrain.cloud.insights.scheduling import (
    SchedulingError,
    ServiceCentre,
    ServiceRequest,
    reschedule,
    schedule,
)

NEAR = ServiceCentre("near", 48.14, 11.58, daily_capacity=1, stock={"tyre": 5, "12v": 1})
FAR = ServiceCentre("far", 48.40, 11.75, daily_capacity=3, stock={"tyre": 5, "12v": 5})


def request(vehicle: str, part: str = "tyre", latest_day: int = 5) -> ServiceRequest:
    return ServiceRequest(vehicle, "tires" if part == "tyre" else "lv_battery", part, 48.13, 11.57, latest_day)


def test_every_booking_respects_capacity_and_comes_before_the_window() -> None:
    requests = [request(f"v{i}", latest_day=3) for i in range(4)]
    appointments = schedule(requests, [NEAR, FAR], days=7)
    per_slot: dict[tuple[str | None, int | None], int] = {}
    for a in appointments:
        assert a.centre_id is not None and a.day is not None and a.day < 3 - 1 + 1
        per_slot[(a.centre_id, a.day)] = per_slot.get((a.centre_id, a.day), 0) + 1
    assert per_slot.get(("near", 0), 0) <= 1 and per_slot.get(("near", 1), 0) <= 1
    assert sum(1 for a in appointments if a.centre_id == "near") == 2  # the near one is full after two


def test_a_part_out_of_stock_sends_the_car_elsewhere_or_explains_why() -> None:
    appointments = schedule([request("a", "12v"), request("b", "12v")], [NEAR], days=7)
    booked = [a for a in appointments if a.centre_id]
    assert len(booked) == 1
    assert "out of stock" in next(a.reason for a in appointments if not a.centre_id)


def test_a_window_too_close_is_reported_not_booked() -> None:
    [a] = schedule([request("a", latest_day=1)], [NEAR, FAR], days=7)
    assert a.centre_id is None and "too soon" in a.reason


def test_driver_moves_the_appointment_and_others_keep_theirs() -> None:
    requests = [request("a"), request("b")]
    first = schedule(requests, [NEAR, FAR], days=7)
    moved = reschedule(requests, [NEAR, FAR], first, "a", move_to=("far", 2), days=7)
    assert (moved[0].centre_id, moved[0].day) == ("far", 2)
    assert (moved[1].centre_id, moved[1].day) == (first[1].centre_id, first[1].day)
    refused = reschedule(requests, [NEAR, FAR], first, "a", days=7)
    assert (refused[0].centre_id, refused[0].day) != (first[0].centre_id, first[0].day)


def test_a_vehicle_twice_is_refused() -> None:
    with pytest.raises(SchedulingError, match="twice"):
        schedule([request("a"), request("a")], [NEAR])
