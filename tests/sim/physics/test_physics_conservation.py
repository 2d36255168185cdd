"""The fleet step conserves energy, regenerates when slowing, keeps SoC in range and charges at
the power the charger and the BMS allow."""

from __future__ import annotations

import numpy as np
import pytest

from drivetrain.sim.physics import COMPACT_HATCH, MIDSIZE_SUV, Controls, FleetPhysics, load_cycle


def _drive(
    fleet: FleetPhysics, speeds: np.ndarray, ambient_c: float = 10.0, grade: float = 0.0
) -> None:
    controls = Controls.idle(fleet.n, ambient_c)
    controls.drive_active[:] = True
    controls.hvac_on[:] = True
    controls.grade[:] = grade
    controls.accel_limit_mps2[:] = 4.0
    controls.decel_limit_mps2[:] = 6.0
    for v in speeds:
        controls.target_speed_mps = np.full(fleet.n, v)
        fleet.step(1.0, controls)


def test_work_at_the_wheels_equals_kinetic_energy_plus_road_losses_plus_braking() -> None:
    fleet = FleetPhysics([COMPACT_HATCH, MIDSIZE_SUV], ambient_c=5.0, soc=0.7)
    wltc = load_cycle("wltc_class3").speed_mps
    _drive(fleet, wltc[:300], grade=0.02)
    _drive(fleet, wltc[300:590], grade=-0.02)
    L = fleet.ledger
    supplied = L.traction_j - L.regen_wheel_j - L.friction_brake_j
    spent = L.inertia_j + L.aero_j + L.rolling_j + L.grade_j + L.brake_drag_j
    np.testing.assert_allclose(supplied, spent, rtol=1e-9, atol=1e-3)
    # the inertia term is exactly the kinetic-energy change (0 -> 0 over a cycle)
    assert np.all(np.abs(L.inertia_j) < 1e-6 * L.traction_j)


def test_battery_energy_equals_traction_plus_losses_plus_hvac_plus_auxiliaries() -> None:
    fleet = FleetPhysics([COMPACT_HATCH, MIDSIZE_SUV], ambient_c=-5.0, soc=0.8)
    _drive(fleet, load_cycle("udds").speed_mps[:700], ambient_c=-5.0)
    L = fleet.ledger
    motor_side = L.traction_j - L.regen_wheel_j + L.gear_loss_j + L.motor_loss_j
    np.testing.assert_allclose(L.motor_electric_j, motor_side, rtol=1e-9)
    bus = L.motor_electric_j + L.hvac_j + L.dcdc_in_j + L.conditioning_j
    np.testing.assert_allclose(L.battery_out_j + L.charger_out_j, bus, rtol=1e-9)
    assert (L.hvac_j > 0.1 * L.battery_out_j).all()  # heating at -5 °C is a real share
    # chemical energy (OCV x charge) = terminal energy + internal losses, within 1 %
    capacity_ah = fleet.params.usable_ah * fleet.state.soh
    used_ah = (0.8 - fleet.state.soc) * capacity_ah
    start_ocv = FleetPhysics([COMPACT_HATCH, MIDSIZE_SUV], soc=0.8).state.battery_ocv_v
    mean_ocv = 0.5 * (start_ocv + fleet.state.battery_ocv_v)
    chemical_j = used_ah * 3600.0 * mean_ocv
    np.testing.assert_allclose(chemical_j, L.battery_out_j + L.battery_internal_loss_j, rtol=0.01)


def test_decelerating_regenerates_energy_into_the_battery() -> None:
    fleet = FleetPhysics([COMPACT_HATCH, MIDSIZE_SUV], ambient_c=20.0, soc=0.6)
    _drive(fleet, np.full(60, 25.0), ambient_c=20.0)
    soc_at_speed = fleet.state.soc.copy()
    ledger_before = fleet.ledger.regen_wheel_j.copy()
    _drive(fleet, np.linspace(25.0, 0.0, 15), ambient_c=20.0)
    assert (fleet.ledger.regen_wheel_j - ledger_before > 100e3).all()
    assert (fleet.state.soc > soc_at_speed).all()  # net charge while braking from 90 km/h
    assert (fleet.state.regen_kwh > 0.02).all()


def test_state_of_charge_never_leaves_0_to_100_percent() -> None:
    fleet = FleetPhysics([COMPACT_HATCH], ambient_c=20.0, soc=0.004)
    _drive(fleet, np.full(240, 33.0))
    assert fleet.state.soc[0] == 0.0
    assert fleet.state.speed_mps[0] < 33.0  # an empty battery cannot hold highway speed
    full = FleetPhysics([COMPACT_HATCH], ambient_c=20.0, soc=0.995)
    controls = Controls.idle(1, 20.0)
    controls.charger_w[:] = 150e3
    controls.charger_dc[:] = True
    controls.charge_limit[:] = 1.0
    for _ in range(120):
        full.step(10.0, controls)
        assert 0.0 <= full.state.soc[0] <= 1.0
    downhill = FleetPhysics([COMPACT_HATCH], ambient_c=20.0, soc=0.999)
    _drive(downhill, np.full(200, 20.0), grade=-0.08)
    assert downhill.state.soc[0] <= 1.0


def test_home_ac_charging_adds_energy_at_the_wallbox_power_less_losses() -> None:
    fleet = FleetPhysics([COMPACT_HATCH, MIDSIZE_SUV], ambient_c=15.0, soc=0.3)
    controls = Controls.idle(2, 15.0)
    controls.charger_w[:] = 11000.0
    controls.charge_limit[:] = 0.9
    for _ in range(360):
        fleet.step(10.0, controls)
    grid_kw = fleet.ledger.grid_j / 3.6e6
    # the compact's on-board charger takes 7.4 kW, the SUV's 11 kW
    assert grid_kw == pytest.approx([7.4, 11.0], rel=0.01)
    stored_kwh = (fleet.ledger.battery_internal_loss_j - fleet.ledger.battery_out_j) / 3.6e6
    assert stored_kwh == pytest.approx([7.4 * 0.90, 11.0 * 0.91], rel=0.03)
    gained = (fleet.state.soc - 0.3) * fleet.params.usable_kwh * fleet.state.soh
    assert gained == pytest.approx(stored_kwh, rel=0.03)


def test_dc_fast_charging_tapers_toward_full_and_stops_at_the_limit() -> None:
    fleet = FleetPhysics([MIDSIZE_SUV], ambient_c=25.0, soc=0.1)
    controls = Controls.idle(1, 25.0)
    controls.charger_w[:] = 150e3
    controls.charger_dc[:] = True
    controls.charge_limit[:] = 0.95
    power_at: dict[int, float] = {}
    for _ in range(720):
        fleet.step(5.0, controls)
        pct = int(fleet.state.soc[0] * 100)
        power_at.setdefault(pct, fleet.state.charge_power_w[0] / 1000.0)
    assert power_at[20] == pytest.approx(125.0 / 0.95 * 0.95, rel=0.05)  # the car's 125 kW limit
    assert power_at[70] < 0.75 * power_at[20]
    assert power_at[90] < 0.35 * power_at[20]
    assert fleet.state.soc[0] == pytest.approx(0.95, abs=0.002)
    assert not fleet.state.charging[0]


def test_a_cold_pack_limits_dc_charging_power() -> None:
    warm = FleetPhysics([MIDSIZE_SUV], ambient_c=25.0, soc=0.2)
    cold = FleetPhysics([MIDSIZE_SUV], ambient_c=-10.0, soc=0.2)
    for fleet, ambient in ((warm, 25.0), (cold, -10.0)):
        controls = Controls.idle(1, ambient)
        controls.charger_w[:] = 150e3
        controls.charger_dc[:] = True
        for _ in range(30):
            fleet.step(1.0, controls)
    assert cold.state.charge_power_w[0] < 0.5 * warm.state.charge_power_w[0]
    assert cold.state.battery_conditioning[0]  # the pack heater runs


def test_step_refuses_a_non_positive_time_step() -> None:
    fleet = FleetPhysics([COMPACT_HATCH])
    with pytest.raises(ValueError, match="dt_s must be > 0"):
        fleet.step(0.0, Controls.idle(1))
