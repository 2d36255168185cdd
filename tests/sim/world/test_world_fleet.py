"""The virtual fleet: seeded and deterministic, catalog-valid VSS output, trips, charging and
ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from drivetrain.core.errors import SimulationConfigError
from drivetrain.core.vss import builtin_catalog
from drivetrain.sim.wear import COMPONENTS, WearConfig
from drivetrain.sim.world import FleetConfig, VirtualFleet
from drivetrain.sim.world.fleet import DEFAULT_START_UTC, DRIVING
from drivetrain.sim.world.routes import haversine_m
from drivetrain.sim.world.signals import SIGNAL_UNITS

#: 05:40 UTC on a Monday: 06:40 in central Europe, the morning commute is about to start.
MORNING_EU = DEFAULT_START_UTC + 5 * 3600 + 40 * 60


def _values_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(np.ma.getdata(a[k]), np.ma.getdata(b[k])) for k in a
    )


@pytest.fixture(scope="module")
def morning() -> VirtualFleet:
    """16 EU vehicles through a morning commute (06:40-09:10 local), one of them nearly empty."""
    fleet = VirtualFleet(FleetConfig(vehicles=16, seed=42, regions=("EU",), start_utc=MORNING_EU))
    commuter = next(
        i
        for i, p in enumerate(fleet.profiles)
        if p.commuter and fleet.charger_w[i] == 0.0 and fleet.depart_at[i] < MORNING_EU + 3600.0
    )
    fleet.physics.state.soc[commuter] = 0.08
    fleet.morning_low_soc_vehicle = commuter  # type: ignore[attr-defined]
    fleet.moved_ok = True  # type: ignore[attr-defined]
    for k in range(int(2.5 * 3600 / 2.5)):
        before = (fleet.latitude.copy(), fleet.longitude.copy())
        driving = fleet.mode == DRIVING
        fleet.step(2.5)
        hop = haversine_m(before[0], before[1], fleet.latitude, fleet.longitude)
        # positions move continuously along the routes: never more than the distance driven + slack
        if np.any(hop[driving] > fleet.physics.state.speed_mps[driving] * 2.5 + 60.0):
            fleet.moved_ok = False  # type: ignore[attr-defined]
        if k % 240 == 0:
            fleet.record_ground_truth()
    return fleet


def test_same_seed_gives_the_same_fleet_and_run_and_another_seed_does_not() -> None:
    config = FleetConfig(vehicles=12, seed=7, start_utc=MORNING_EU)
    a, b = VirtualFleet(config), VirtualFleet(config)
    c = VirtualFleet(FleetConfig(vehicles=12, seed=8, start_utc=MORNING_EU))
    assert a.vins == b.vins
    for fleet in (a, b, c):
        for _ in range(250):
            fleet.step(4.0)
    assert _values_equal(a.vss_values(), b.vss_values())
    assert a.ground_truth.trips == b.ground_truth.trips
    assert not _values_equal(a.vss_values(), c.vss_values())


def test_reading_outputs_does_not_change_the_trajectory() -> None:
    config = FleetConfig(vehicles=6, seed=3, regions=("EU",), start_utc=MORNING_EU)
    quiet, chatty = VirtualFleet(config), VirtualFleet(config)
    for k in range(400):
        quiet.step(2.0)
        chatty.step(2.0)
        if k % 7 == 0:
            chatty.vss_values()
            chatty.extra_values()
    assert np.array_equal(quiet.physics.state.odometer_m, chatty.physics.state.odometer_m)


def test_every_vehicle_reports_over_50_signals_all_valid_for_the_catalog(
    morning: VirtualFleet,
) -> None:
    catalog = builtin_catalog()
    values = morning.vss_values()
    per_vehicle = np.zeros(morning.n, dtype=int)
    for path, array in values.items():
        spec = catalog.get(path)  # every path exists (raises otherwise)
        assert spec.unit == SIGNAL_UNITS[path], path
        assert len(array) == morning.n
        present = ~np.ma.getmaskarray(array)
        per_vehicle += present
        data = np.ma.getdata(array)[present]
        assert catalog.validate_array(path, data).all(), (
            path,
            data[~catalog.validate_array(path, data)][:3],
        )
        if spec.minimum is not None:
            assert (data >= spec.minimum).all(), path
        if spec.maximum is not None:
            assert (data <= spec.maximum).all(), path
    assert set(values) == set(SIGNAL_UNITS)
    assert per_vehicle.min() >= 50


def test_the_motor_reports_under_the_axle_it_drives(morning: VirtualFleet) -> None:
    values = morning.vss_values()
    front = np.array([m.motor.axle == "front" for m in morning.models])
    assert front.any() and (~front).any()
    front_speed = values["Vehicle.Powertrain.ElectricMotor.Front.Speed"]
    rear_speed = values["Vehicle.Powertrain.ElectricMotor.Rear.Speed"]
    assert np.array_equal(~np.ma.getmaskarray(front_speed), front)
    assert np.array_equal(~np.ma.getmaskarray(rear_speed), ~front)


def test_commuters_drive_to_work_along_continuous_routes_and_park(morning: VirtualFleet) -> None:
    trips = morning.ground_truth.trips
    assert len(trips) >= 6
    assert morning.moved_ok  # type: ignore[attr-defined]
    for trip in trips:
        assert trip["end_s"] > trip["start_s"]
        assert 0.5 < trip["distance_km"] < 120.0
        assert trip["distance_km"] == pytest.approx(trip["route_km"], rel=0.05, abs=0.05)
        if trip["charge_stops"] == 0:
            kwh_per_km = (trip["battery_out_kwh"] - trip["battery_in_kwh"]) / trip["distance_km"]
            assert 0.05 < kwh_per_km < 0.45, trip
    assert {t["to_kind"] for t in trips} >= {"work"}
    speed = morning.vss_values()["Vehicle.Speed"]
    assert (speed[morning.mode == 0] == 0).all()


def test_a_nearly_empty_car_stops_at_a_dc_charger_on_its_way_and_continues(
    morning: VirtualFleet,
) -> None:
    i = morning.morning_low_soc_vehicle  # type: ignore[attr-defined]
    vin = morning.vins[i]
    dc = [s for s in morning.ground_truth.sessions if s["vin"] == vin and s["kind"] == "public_dc"]
    assert len(dc) == 1
    session = dc[0]
    assert session["start_soc_pct"] < 20.0 and session["end_soc_pct"] >= 79.0
    # a January morning: the cold pack takes a fraction of the charger's rating
    assert 15.0 < session["max_power_kw"] <= session["rated_kw"]
    stored_kwh = (
        (session["end_soc_pct"] - session["start_soc_pct"])
        / 100.0
        * morning.models[i].battery.usable_kwh
    )
    assert stored_kwh < session["energy_kwh"] < 1.3 * stored_kwh
    trips = [t for t in morning.ground_truth.trips if t["vin"] == vin]
    assert trips and trips[0]["charge_stops"] == 1  # it reached its destination after one stop


def test_home_charging_sessions_end_when_the_driver_leaves(morning: VirtualFleet) -> None:
    home = [s for s in morning.ground_truth.sessions if s["kind"] == "home_ac"]
    assert home
    for s in home:
        assert s["rated_kw"] in (7.4, 11.0)
        assert s["end_soc_pct"] >= s["start_soc_pct"]
        assert s["max_power_kw"] <= s["rated_kw"] + 1e-9


def test_ground_truth_is_written_as_parquet_with_rul_per_component(
    morning: VirtualFleet, tmp_path: Path
) -> None:
    paths = morning.ground_truth.write_parquet(tmp_path / "truth")
    health = pq.read_table(paths["component_health.parquet"])
    assert health.num_rows == morning.ground_truth.samples * morning.n
    for column in (
        "time_s",
        "vin",
        "tires_rul_s",
        "lv_battery_rul_s",
        "coolant_pump_rul_op_s",
        "hv_cell_rul_s",
        "brake_pads_rul_mj",
        "battery_soh_pct",
    ):
        assert column in health.column_names
    for component in COMPONENTS:
        assert f"{component}_fault" in health.column_names
    trips = pq.read_table(paths["trips.parquet"])
    assert trips.num_rows == len(morning.ground_truth.trips)
    sessions = pq.read_table(paths["charging_sessions.parquet"])
    assert sessions.num_rows == len(morning.ground_truth.sessions)
    assert pq.read_table(paths["component_events.parquet"]).num_rows == len(
        morning.ground_truth.events
    )


def test_accelerated_wear_produces_failures_in_the_ground_truth_events(tmp_path: Path) -> None:
    wear = WearConfig(
        acceleration=5000.0, horizon_s=600.0, fault_probability={c: 1.0 for c in COMPONENTS}
    )
    fleet = VirtualFleet(FleetConfig(vehicles=8, seed=1, wear=wear, start_utc=MORNING_EU))
    for _ in range(600):
        fleet.step(5.0)
    kinds = {(e["component"], e["kind"]) for e in fleet.ground_truth.events}
    assert ("tires", "failure") in kinds and ("hv_cell", "fault_onset") in kinds
    values = fleet.vss_values()
    assert values["Vehicle.Diagnostics.DTCCount"].max() >= 1
    lv_failed = fleet.wear.failed["lv_battery"]
    assert np.array_equal(
        values["Vehicle.IsBrokenDown"][lv_failed], np.ones(lv_failed.sum(), dtype=bool)
    )
    events = pq.read_table(fleet.ground_truth.write_parquet(tmp_path)["component_events.parquet"])
    assert events.num_rows == len(fleet.ground_truth.events) > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vehicles": 0}, "vehicles 0; expected an integer >= 1"),
        ({"vehicles": 5, "regions": ()}, "regions is empty"),
        ({"vehicles": 5, "regions": ("EU", "XX")}, "region 'XX'"),
        ({"vehicles": 5, "model_mix": {"tractor": 1.0}}, "model_mix names 'tractor'"),
        ({"vehicles": 5, "model_mix": {"midsize-suv-77": -1.0}}, "expected a share >= 0"),
        ({"vehicles": 5, "model_mix": {"midsize-suv-77": 0.0}}, "sum to 0"),
        ({"vehicles": 5, "max_vehicle_age_years": 99.0}, "max_vehicle_age_years 99.0"),
    ],
)
def test_fleet_settings_that_cannot_be_simulated_are_refused(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SimulationConfigError, match=message):
        FleetConfig(**kwargs)  # type: ignore[arg-type]


def test_step_refuses_time_steps_outside_0_to_10_seconds() -> None:
    fleet = VirtualFleet(FleetConfig(vehicles=2))
    for bad in (0.0, -1.0, 11.0):
        with pytest.raises(ValueError, match=r"dt_s must be in \(0, 10\]"):
            fleet.step(bad)


def test_fleets_of_different_seeds_get_different_vins() -> None:
    from drivetrain.sim.world import FleetConfig, VirtualFleet

    first = VirtualFleet(FleetConfig(vehicles=20, seed=1)).vins
    second = VirtualFleet(FleetConfig(vehicles=20, seed=2)).vins
    assert len(set(first)) == 20
    assert not set(first) & set(second)
    assert VirtualFleet(FleetConfig(vehicles=20, seed=1)).vins == first
