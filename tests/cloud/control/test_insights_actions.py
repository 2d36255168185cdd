"""Acting on predictions through the dispatcher: a booked service appointment, the driver's
accept and move, and a charging plan reach real edge agents as signed commands they verify
and execute — and nothing reaches another tenant's vehicles."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rig as rig_module
from rig import Rig

from drivetrain.cloud.commands import get_job
from drivetrain.cloud.infra import Database
from drivetrain.cloud.insights.booking import (
    LATITUDE,
    LONGITUDE,
    accept_appointment,
    book_appointments,
    cancel_appointment,
    list_appointments,
    move_appointment,
    put_centre,
)
from drivetrain.cloud.insights.charging import ChargingSession
from drivetrain.cloud.insights.charging_plans import create_plan, get_plan
from drivetrain.cloud.insights.registry import ModelCard
from drivetrain.cloud.insights.service import store_run
from drivetrain.cloud.insights.training import ComponentPrediction
from drivetrain.cloud.privacy import pseudonymiser
from drivetrain.cloud.twins import apply_reported
from drivetrain.core.errors import ConflictError, NotFoundError

pytest.importorskip("ortools")
pytest.importorskip("scipy")

NOW = datetime.now(UTC).replace(microsecond=0)


def _received(args: Mapping[str, Any]) -> str:
    return f"noted {args.get('appointment_id') or args.get('plan_id')}"


@pytest.fixture
def rig(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    """The dispatcher's rig whose vehicles understand the insights commands."""
    monkeypatch.setitem(rig_module.COMMANDS, "service.appointment", _received)
    monkeypatch.setitem(rig_module.COMMANDS, "charging.schedule", _received)
    made = Rig(database)
    try:
        yield made
    finally:
        made.close()


def _alert(rig: Rig, vin: str, component: str, days_ahead: float) -> None:
    """A stored scoring run whose only alert is ``vin``'s ``component``."""
    with rig.database.session() as session:
        pseudonym = pseudonymiser(session, "acme")(vin)
        apply_reported(session, {vin: {LATITUDE: (48.14, NOW), LONGITUDE: (11.58, NOW)}})
        card = ModelCard("maintenance", 1, "maintenance.failure-window", NOW, "test", (), {}, {})
        start = NOW + timedelta(days=days_ahead)
        store_run(session, tenant="acme", card=card, threshold=0.5, trigger="command",
                  predictions=[ComponentPrediction(pseudonym, component, 0.9, start, start + timedelta(days=2), NOW)],
                  data_window=(NOW - timedelta(days=1), NOW), started_at=NOW, actor="test")


def _executed(rig: Rig, vin: str, name: str) -> list[dict[str, Any]]:
    return [args for command, args in rig.actuators[vin].executed if command == name]


def test_a_booked_appointment_and_the_drivers_accept_and_move_reach_the_car_signed(rig: Rig) -> None:
    vin = rig.vins[0]
    _alert(rig, vin, "tires", days_ahead=6)
    with rig.database.session() as session:
        put_centre(session, "acme", "munich-north", name="Munich North", lat=48.2, lon=11.6,
                   daily_capacity=1, stock={"tyre": 2}, actor="test")
        put_centre(session, "acme", "munich-south", name="Munich South", lat=48.1, lon=11.55,
                   daily_capacity=1, stock={"tyre": 1}, actor="test")
        result = book_appointments(session, "acme", actor="test", now=NOW)
    assert result.unbooked == ()
    [booked] = result.booked
    assert booked.vin == vin and booked.status == "proposed" and booked.part == "tyre"
    assert NOW.date() <= booked.day < (NOW + timedelta(days=6)).date()  # before the window
    rig.cycle()
    [told] = _executed(rig, vin, "service.appointment")
    assert told["appointment_id"] == booked.appointment_id and told["status"] == "proposed"
    assert told["date"] == booked.day.isoformat() and told["centre"]["id"] == booked.centre_id

    with rig.database.session() as session:
        accepted = accept_appointment(session, "acme", booked.appointment_id, actor="driver-app", now=NOW)
        with pytest.raises(ConflictError, match="only a proposed one"):
            accept_appointment(session, "acme", booked.appointment_id, actor="driver-app", now=NOW)
    rig.cycle()
    assert [a["status"] for a in _executed(rig, vin, "service.appointment")] == ["proposed", "accepted"]
    assert accepted.command_id != booked.command_id

    with rig.database.session() as session:  # the driver refuses that slot: the next best
        moved = move_appointment(session, "acme", booked.appointment_id, actor="driver-app", now=NOW)
    assert (moved.centre_id, moved.day) != (booked.centre_id, booked.day)
    chosen = NOW.date() + timedelta(days=2)
    with rig.database.session() as session:  # the driver picks a slot
        picked = move_appointment(session, "acme", booked.appointment_id, actor="driver-app",
                                  centre_id="munich-south", day=chosen, now=NOW)
    assert (picked.centre_id, picked.day, picked.status) == ("munich-south", chosen, "accepted")
    with rig.database.session() as session, pytest.raises(ConflictError, match="cannot move"):
        move_appointment(session, "acme", booked.appointment_id, actor="driver-app",  # after the window
                         centre_id="munich-south", day=NOW.date() + timedelta(days=9), now=NOW)
    rig.cycle()
    # Two moves before the car was reached: the first update is withdrawn, only the latest arrives.
    told = _executed(rig, vin, "service.appointment")
    assert [(a["centre"]["id"], a["date"]) for a in told[2:]] == [("munich-south", chosen.isoformat())]
    with rig.database.session() as session:
        withdrawn = get_job(session, moved.command_id or "", tenant="acme")
    assert withdrawn.status == "cancelled" and "superseded" in (withdrawn.reason or "")
    with rig.database.session() as session:
        assert [a.appointment_id for a in list_appointments(session, "acme")] == [booked.appointment_id]
        # Booking again books nobody twice: the vehicle has its appointment.
        assert book_appointments(session, "acme", actor="test", now=NOW).booked == ()
        cancelled = cancel_appointment(session, "acme", booked.appointment_id, actor="driver-app", now=NOW)
        with pytest.raises(ConflictError, match="cancelled; it cannot be moved"):
            move_appointment(session, "acme", booked.appointment_id, actor="driver-app", now=NOW)
    assert cancelled.status == "cancelled"
    rig.cycle()
    assert _executed(rig, vin, "service.appointment")[-1]["status"] == "cancelled"
    with rig.database.session() as session:  # the alert stands: booking proposes a slot again
        [again] = book_appointments(session, "acme", actor="test", now=NOW).booked
    assert again.vin == vin and again.appointment_id != booked.appointment_id


def test_booking_reports_why_a_vehicle_could_not_be_booked(rig: Rig) -> None:
    _alert(rig, rig.vins[1], "coolant_pump", days_ahead=5)
    with rig.database.session() as session:
        with pytest.raises(ConflictError, match="no service centres"):
            book_appointments(session, "acme", actor="test", now=NOW)
        put_centre(session, "acme", "far-away", name="Far", lat=40.0, lon=-3.7, daily_capacity=3,
                   stock={"coolant-pump": 1}, actor="test")
        result = book_appointments(session, "acme", actor="test", now=NOW)
    assert result.booked == ()
    assert [(u.vin, u.reason) for u in result.unbooked] == [(rig.vins[1], "no service centre within 150 km")]


def test_another_tenant_never_sees_or_moves_an_appointment(rig: Rig) -> None:
    _alert(rig, rig.vins[0], "lv_battery", days_ahead=4)
    with rig.database.session() as session:
        put_centre(session, "acme", "c1", name="C1", lat=48.1, lon=11.6, daily_capacity=2,
                   stock={"12v-battery": 2}, actor="test")
        [booked] = book_appointments(session, "acme", actor="test", now=NOW).booked
        with pytest.raises(NotFoundError):
            accept_appointment(session, "globex", booked.appointment_id, actor="intruder", now=NOW)
        with pytest.raises(NotFoundError):
            move_appointment(session, "globex", booked.appointment_id, actor="intruder", now=NOW)
        assert list_appointments(session, "globex") == []


def test_a_charging_plan_reaches_each_car_as_its_signed_schedule(rig: Rig) -> None:
    prices = [0.40] * 8 + [0.12] * 16 + [0.40] * 8  # 8 hours of 15-minute slots, cheap at night
    sessions = [ChargingSession(vin, 50.0, 0.3, 0.8, 0, 32, max_kw=11.0) for vin in rig.vins[:2]]
    with rig.database.session() as session:
        plan = create_plan(session, "acme", actor="test", site="depot", start_at=NOW, slot_minutes=15,
                           prices_per_kwh=prices, sessions=sessions, site_limit_kw=15.0, now=NOW)
    assert plan.cost < plan.baseline_cost  # the LP charges in the cheap hours
    assert all(s.shortfall_kwh < 1e-6 for s in plan.schedules)
    rig.cycle()
    for schedule in plan.schedules:
        [told] = _executed(rig, schedule.vin, "charging.schedule")
        assert told["plan_id"] == plan.plan_id and told["slot_minutes"] == 15
        assert told["power_kw"] == list(schedule.power_kw) and len(told["power_kw"]) == 32
        assert sum(told["power_kw"][:8]) == 0  # nothing bought at the expensive start
    assert _executed(rig, rig.vins[2], "charging.schedule") == []


def test_a_charging_plan_naming_another_tenants_car_stores_nothing(rig: Rig) -> None:
    sessions = [ChargingSession(rig.vins[0], 50.0, 0.3, 0.8, 0, 8),
                ChargingSession(rig.other_vins[0], 50.0, 0.3, 0.8, 0, 8)]
    with pytest.raises(NotFoundError), rig.database.session() as session:
        create_plan(session, "acme", actor="test", site="depot", start_at=NOW, slot_minutes=15,
                    prices_per_kwh=[0.2] * 8, sessions=sessions, now=NOW)
    with rig.database.session() as session, pytest.raises(NotFoundError):
        get_plan(session, "acme", "chg-unknown")
    rig.cycle()
    assert all(not _executed(rig, v, "charging.schedule") for v in rig.vins + rig.other_vins)


def test_a_booked_slot_stays_taken_after_its_vehicle_drove_away(rig: Rig) -> None:
    _alert(rig, rig.vins[0], "tires", days_ahead=3)
    with rig.database.session() as session:
        put_centre(session, "acme", "only", name="Only", lat=48.14, lon=11.58, daily_capacity=1,
                   stock={"tyre": 5}, actor="test")
        [first] = book_appointments(session, "acme", actor="test", now=NOW).booked
        later = NOW + timedelta(minutes=1)  # the first car is now 1,500 km away
        apply_reported(session, {rig.vins[0]: {LATITUDE: (40.4, later), LONGITUDE: (-3.7, later)}})
    with rig.database.session() as session:
        pseudonyms = pseudonymiser(session, "acme")
        apply_reported(session, {rig.vins[1]: {LATITUDE: (48.14, NOW), LONGITUDE: (11.58, NOW)}})
        card = ModelCard("maintenance", 2, "maintenance.failure-window", NOW, "test", (), {}, {})
        start = NOW + timedelta(days=3)
        store_run(session, tenant="acme", card=card, threshold=0.5, trigger="command", actor="test",
                  predictions=[ComponentPrediction(pseudonyms(v), "tires", 0.9, start, start + timedelta(days=1), NOW)
                               for v in rig.vins[:2]],
                  data_window=(NOW - timedelta(days=1), NOW), started_at=later)
        [second] = book_appointments(session, "acme", actor="test", now=NOW).booked
    assert second.vin == rig.vins[1] and second.day != first.day  # one job a day at that centre
