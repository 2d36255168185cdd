"""Per-vehicle parameter arrays gathered once from each vehicle's ``VehicleModel``.

The step works on these arrays, never on the model objects, so a fleet mixing models costs the
same as a fleet of one model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivetrain.sim.physics.vehicle_models import VehicleModel

F64 = npt.NDArray[np.float64]


def _column(models: Sequence[VehicleModel], get: Callable[[VehicleModel], float]) -> F64:
    # One value per distinct model, then a gather: cheap for thousands of vehicles.
    distinct: dict[str, float] = {}
    for m in models:
        if m.name not in distinct:
            distinct[m.name] = float(get(m))
    return np.array([distinct[m.name] for m in models], dtype=np.float64)


@dataclass(frozen=True)
class FleetParameters:
    """Model parameters as arrays of shape ``(n_vehicles,)``, SI units."""

    mass_kg: F64
    inertial_mass_kg: F64
    cda_m2: F64
    crr: F64
    tire_radius_m: F64
    tire_pressure_kpa: F64
    front_brake_share: F64
    aux_load_w: F64
    lv_battery_ah: F64
    max_speed_mps: F64
    wheelbase_m: F64
    steering_ratio: F64
    # motor and gear
    gear_ratio: F64
    gear_efficiency: F64
    motor_max_power_w: F64
    motor_max_torque_nm: F64
    motor_max_regen_w: F64
    motor_constant_loss_w: F64
    motor_iron_loss: F64
    motor_copper_loss: F64
    motor_heat_capacity: F64
    motor_ua_coolant: F64
    front_drive: npt.NDArray[np.bool_]
    # battery
    cells_series: F64
    cells_parallel: F64
    usable_ah: F64
    usable_kwh: F64
    r0_ohm: F64
    r1_ohm: F64
    tau1_s: F64
    pack_v_max: F64
    pack_v_min: F64
    max_discharge_a: F64
    max_regen_a: F64
    pack_heat_capacity: F64
    pack_ua_parked: F64
    pack_ua_active: F64
    pack_cooling_max_w: F64
    pack_heater_max_w: F64
    # charging
    ac_max_w: F64
    ac_efficiency: F64
    dc_max_w: F64
    dc_efficiency: F64
    dc_taper_start: F64
    dc_end_c: F64
    dc_cold_c: F64
    # cabin
    cabin_ua: F64
    cabin_heat_capacity: F64
    cabin_heater_max_w: F64
    cabin_cooler_max_w: F64
    heat_pump: npt.NDArray[np.bool_]
    blower_w: F64

    @property
    def n(self) -> int:
        """Number of vehicles."""
        return int(self.mass_kg.shape[0])

    @classmethod
    def from_models(cls, models: Sequence[VehicleModel]) -> FleetParameters:
        """Arrays for a fleet whose vehicle ``i`` is of model ``models[i]``.

        Raises:
            ValueError: ``models`` is empty.
        """
        if not models:
            raise ValueError("a fleet needs at least one vehicle model")

        def col(get: Callable[[VehicleModel], float]) -> F64:
            return _column(models, get)

        capacity_ah = col(lambda m: m.battery.usable_ah)
        return cls(
            mass_kg=col(lambda m: m.test_mass_kg),
            inertial_mass_kg=col(lambda m: m.test_mass_kg * (1 + m.rotating_mass_factor)),
            cda_m2=col(lambda m: m.drag_coefficient * m.frontal_area_m2),
            crr=col(lambda m: m.rolling_resistance),
            tire_radius_m=col(lambda m: m.tire_radius_m),
            tire_pressure_kpa=col(lambda m: m.tire_pressure_kpa),
            front_brake_share=col(lambda m: m.front_brake_share),
            aux_load_w=col(lambda m: m.aux_load_w),
            lv_battery_ah=col(lambda m: m.lv_battery_ah),
            max_speed_mps=col(lambda m: m.max_speed_mps),
            wheelbase_m=col(lambda m: m.wheelbase_mm / 1000.0),
            steering_ratio=col(lambda m: m.steering_ratio),
            gear_ratio=col(lambda m: m.motor.gear_ratio),
            gear_efficiency=col(lambda m: m.motor.gear_efficiency),
            motor_max_power_w=col(lambda m: m.motor.max_power_kw * 1000.0),
            motor_max_torque_nm=col(lambda m: m.motor.max_torque_nm),
            motor_max_regen_w=col(lambda m: m.motor.max_regen_kw * 1000.0),
            motor_constant_loss_w=col(lambda m: m.motor.constant_loss_w),
            motor_iron_loss=col(lambda m: m.motor.iron_loss_w_per_rad_s),
            motor_copper_loss=col(lambda m: m.motor.copper_loss_w_per_nm2),
            motor_heat_capacity=col(lambda m: m.motor.heat_capacity_j_per_k),
            motor_ua_coolant=col(lambda m: m.motor.ua_to_coolant_w_per_k),
            front_drive=col(lambda m: 1.0 if m.motor.axle == "front" else 0.0).astype(bool),
            cells_series=col(lambda m: m.battery.cells_series),
            cells_parallel=col(lambda m: m.battery.cells_parallel),
            usable_ah=capacity_ah,
            usable_kwh=col(lambda m: m.battery.usable_kwh),
            r0_ohm=col(lambda m: m.battery.r0_ohm),
            r1_ohm=col(lambda m: m.battery.r1_ohm),
            tau1_s=col(lambda m: m.battery.tau1_s),
            pack_v_max=col(lambda m: m.battery.cell_v_max * m.battery.cells_series),
            pack_v_min=col(lambda m: m.battery.cell_v_min * m.battery.cells_series),
            max_discharge_a=col(lambda m: m.battery.max_discharge_c * m.battery.usable_ah),
            max_regen_a=col(lambda m: m.battery.max_regen_c * m.battery.usable_ah),
            pack_heat_capacity=col(lambda m: m.battery.heat_capacity_j_per_k),
            pack_ua_parked=col(lambda m: m.battery.ua_parked_w_per_k),
            pack_ua_active=col(lambda m: m.battery.ua_active_w_per_k),
            pack_cooling_max_w=col(lambda m: m.battery.cooling_max_w),
            pack_heater_max_w=col(lambda m: m.battery.heater_max_w),
            ac_max_w=col(lambda m: m.charging.ac_max_kw * 1000.0),
            ac_efficiency=col(lambda m: m.charging.ac_efficiency),
            dc_max_w=col(lambda m: m.charging.dc_max_kw * 1000.0),
            dc_efficiency=col(lambda m: m.charging.dc_efficiency),
            dc_taper_start=col(lambda m: m.charging.dc_taper_start_soc),
            dc_end_c=col(lambda m: m.charging.dc_end_c_rate),
            dc_cold_c=col(lambda m: m.charging.dc_cold_limit_c),
            cabin_ua=col(lambda m: m.cabin.ua_w_per_k),
            cabin_heat_capacity=col(lambda m: m.cabin.heat_capacity_j_per_k),
            cabin_heater_max_w=col(lambda m: m.cabin.heater_max_w),
            cabin_cooler_max_w=col(lambda m: m.cabin.cooler_max_w),
            heat_pump=col(lambda m: 1.0 if m.cabin.heat_pump else 0.0).astype(bool),
            blower_w=col(lambda m: m.cabin.blower_w),
        )
