"""The traction battery ages: capacity fades faster when hot and with DC fast charging, and the
internal resistance grows with the fade."""

from __future__ import annotations

import numpy as np
import pytest

from drivetrain.sim.physics import COMPACT_HATCH, MIDSIZE_SUV, Controls, FleetPhysics
from drivetrain.sim.physics import battery as bat


def _cycle_days(fleet: FleetPhysics, ambient_c: np.ndarray, dc: np.ndarray, days: int) -> None:
    """Each day: drive at 120 km/h down to 25 % SoC, recharge to 85 % (AC 11 kW or DC 150 kW),
    rest the remainder of the day. Vehicles differ only in ``ambient_c`` and ``dc``."""
    n = fleet.n
    for _ in range(days):
        drive = Controls.idle(n)
        drive.ambient_c = ambient_c
        drive.target_speed_mps[:] = 33.0
        used = 0.0
        while (fleet.state.soc > 0.25).any():
            drive.drive_active = fleet.state.soc > 0.25
            drive.target_speed_mps = np.where(drive.drive_active, 33.0, 0.0)
            fleet.step(30.0, drive)
            used += 30.0
        charge = Controls.idle(n)
        charge.ambient_c = ambient_c
        charge.charger_w = np.where(dc, 150e3, 11e3)
        charge.charger_dc = dc.copy()
        charge.charge_limit[:] = 0.85
        while (fleet.state.soc < 0.849).any():
            fleet.step(30.0, charge)
            used += 30.0
        rest = Controls.idle(n)
        rest.ambient_c = ambient_c
        fleet.step(86400.0 - used, rest)


def test_capacity_fades_more_at_higher_temperature() -> None:
    fleet = FleetPhysics([MIDSIZE_SUV, MIDSIZE_SUV], ambient_c=np.array([10.0, 35.0]), soc=0.85)
    _cycle_days(fleet, np.array([10.0, 35.0]), np.array([False, False]), days=2)
    cool, hot = 1.0 - fleet.state.soh
    assert hot > 1.5 * cool


def test_dc_fast_charging_fades_capacity_more_than_ac_charging() -> None:
    fleet = FleetPhysics([COMPACT_HATCH, COMPACT_HATCH], ambient_c=20.0, soc=0.85)
    _cycle_days(fleet, np.array([20.0, 20.0]), np.array([False, True]), days=2)
    ac, dc = fleet.state.fade_cycle
    assert dc > 1.3 * ac
    assert fleet.state.dc_charged_kwh[1] > 30.0 and fleet.state.dc_charged_kwh[0] == 0.0
    assert fleet.state.equivalent_full_cycles[1] == pytest.approx(
        fleet.state.equivalent_full_cycles[0], rel=0.1
    )


def test_calendar_fade_follows_the_square_root_of_time_and_reaches_two_percent_a_year() -> None:
    fleet = FleetPhysics([COMPACT_HATCH], ambient_c=25.0, soc=0.5)
    rest = Controls.idle(1, 25.0)
    fade_at = {}
    for day in range(1, 366):
        fleet.step(86400.0, rest)
        fade_at[day] = fleet.state.fade_calendar[0]
    assert fade_at[365] == pytest.approx(0.02, rel=0.15)
    assert fade_at[365] / fade_at[91] == pytest.approx(2.0, rel=0.15)  # sqrt(4)


def test_resistance_grows_with_fade_and_in_the_cold() -> None:
    soc = np.array([0.5])
    new = bat.resistance_factor(np.array([25.0]), soc, np.array([0.0]))
    aged = bat.resistance_factor(np.array([25.0]), soc, np.array([0.2]))
    cold = bat.resistance_factor(np.array([-10.0]), soc, np.array([0.0]))
    assert new[0] == pytest.approx(1.0)
    assert aged[0] == pytest.approx(1.6)
    assert 2.5 < cold[0] < 3.5


def test_current_for_power_caps_at_the_maximum_transferable_power() -> None:
    emf, r = np.array([400.0, 400.0]), np.array([0.1, 0.1])
    current, delivered = bat.current_for_power(np.array([50e3, 1e6]), emf, r)
    assert (emf[0] - current[0] * r[0]) * current[0] == pytest.approx(50e3)
    assert delivered[1] == pytest.approx(400.0**2 / 0.4)
