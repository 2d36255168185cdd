"""Lumped thermal models (cabin, pack, motor, coolant, tyres) — pure functions over arrays.

Every node relaxes exponentially toward its instantaneous equilibrium, which is exact for a
constant heat input over the step and stable for any step length (a parked car may be
stepped in minutes).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from drivetrain.sim.physics.arrays import clip

F64 = npt.NDArray[np.float64]

#: Air density at sea level, 101.325 kPa: rho = p / (R_specific · T).
_P_SEA_LEVEL_PA = 101325.0
_R_AIR = 287.05


def air_density(ambient_c: F64, altitude_m: F64 | float = 0.0) -> F64:
    """Dry-air density (kg/m³) at ``ambient_c`` and ``altitude_m`` (barometric formula)."""
    pressure = _P_SEA_LEVEL_PA * np.exp(-np.asarray(altitude_m) / 8434.0)
    return pressure / (_R_AIR * (ambient_c + 273.15))


def relax(
    temp_c: F64,
    equilibrium_c: F64,
    conductance_w_per_k: F64,
    capacity_j_per_k: F64 | float,
    dt_s: float,
) -> F64:
    """Temperature after ``dt_s`` of a node relaxing toward ``equilibrium_c`` (exact solution of
    ``C·dT/dt = G·(T_eq − T)``)."""
    decay = np.exp(-dt_s * conductance_w_per_k / capacity_j_per_k)
    return equilibrium_c + (temp_c - equilibrium_c) * decay


def heat_pump_cop(ambient_c: F64) -> F64:
    """Heating coefficient of performance of an automotive heat pump vs ambient (°C).

    ~2.9 at +10 °C, ~2.0 at −5 °C, 1.4 at −15 °C: a linear fit to published R1234yf/R744
    vehicle heat pump bench results; below −20 °C the PTC heater does the work (COP 1).
    """
    return clip(2.3 + 0.06 * ambient_c, 1.0, 3.2)


def cooling_cop(ambient_c: F64) -> F64:
    """Air-conditioning coefficient of performance vs ambient (°C): ~3 at 25 °C, ~2 at 40 °C."""
    return clip(3.0 - 0.065 * (ambient_c - 25.0), 1.8, 4.0)


def hvac_step(
    cabin_c: F64,
    ambient_c: F64,
    setpoint_c: F64,
    on: npt.NDArray[np.bool_],
    ua_w_per_k: F64,
    capacity_j_per_k: F64,
    heater_max_w: F64,
    cooler_max_w: F64,
    heat_pump: npt.NDArray[np.bool_],
    blower_w: F64,
    dt_s: float,
) -> tuple[F64, F64, F64]:
    """Advance the cabin air temperature one step with the climate control.

    The controller asks for the heat that holds the set point against the envelope losses
    plus a proportional term that closes the gap in ~5 minutes, within the heater/cooler
    limits. Occupants add 100 W while the car is on. Returns ``(cabin_c, thermal_w,
    electric_w)`` where ``thermal_w`` > 0 heats the cabin and ``electric_w`` is what the HVAC
    draws from the high-voltage bus.
    """
    occupants = np.where(on, 100.0, 0.0)
    demand = (
        ua_w_per_k * (setpoint_c - ambient_c) + capacity_j_per_k * (setpoint_c - cabin_c) / 300.0
    )
    demand = demand - occupants
    # A dead band of ±0.5 K keeps the compressor from chattering around the set point.
    idle = np.abs(setpoint_c - cabin_c) < 0.5
    demand = np.where(idle & (np.abs(demand) < 150.0), 0.0, demand)
    thermal = np.where(on, clip(demand, -cooler_max_w, heater_max_w), 0.0)
    heating = np.maximum(thermal, 0.0)
    cooling = np.maximum(-thermal, 0.0)
    # Heat pump covers up to 3 kW of heat; anything above comes from the PTC heater.
    hp_share = np.where(heat_pump, np.minimum(heating, 3000.0), 0.0)
    ptc_share = heating - hp_share
    electric = hp_share / heat_pump_cop(ambient_c) + ptc_share + cooling / cooling_cop(ambient_c)
    load = np.abs(thermal) / np.maximum(heater_max_w, 1.0)
    electric = electric + np.where(on, blower_w * (0.3 + 0.7 * np.minimum(load, 1.0)), 0.0)
    equilibrium = ambient_c + (thermal + occupants) / ua_w_per_k
    cabin = relax(cabin_c, equilibrium, ua_w_per_k, capacity_j_per_k, dt_s)
    return cabin, thermal, electric
