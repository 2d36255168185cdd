"""Vehicle model specifications: the fixed parameters of each simulated battery-electric model.

A ``VehicleModel`` is a frozen value; the fleet physics reads it once into per-vehicle arrays.
Parameters come from public spec sheets where those publish them (mass, power, torque, pack
energy and cell layout, drag, tyres, charging limits); the rest (loss coefficients, thermal
masses) are engineering estimates of the right order for the class of vehicle, chosen so the
simulated energy use lands where real trips and type-approval figures put it. Each estimate is
marked as one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

from drivetrain.core.errors import SimulationConfigError

DriveAxle = Literal["front", "rear"]


@dataclass(frozen=True)
class BatterySpec:
    """A traction battery: ``cells_series`` x ``cells_parallel`` cells plus an equivalent circuit.

    Resistances are at 25 °C and 50 % state of charge for a new pack; the circuit is
    ``R0`` (ohmic) in series with one ``R1 || C1`` pair (polarisation, time constant
    ``tau1_s``).
    """

    cells_series: int
    cells_parallel: int
    cell_capacity_ah: float
    cell_nominal_v: float
    usable_fraction: float  # share of gross energy the BMS lets the driver use
    r0_ohm: float
    r1_ohm: float
    tau1_s: float
    cell_v_max: float  # charge cut-off (constant-voltage phase) per cell, V
    cell_v_min: float  # discharge cut-off per cell, V
    max_discharge_c: float  # continuous discharge limit, multiples of capacity
    max_regen_c: float
    heat_capacity_j_per_k: float
    ua_parked_w_per_k: float  # pack to ambient, vehicle off
    ua_active_w_per_k: float  # pack to coolant/ambient with the pump running
    cooling_max_w: float  # chiller capacity
    heater_max_w: float  # conditioning heater (used before/while DC charging when cold)

    @property
    def gross_kwh(self) -> float:
        """Gross pack energy at nominal cell voltage, kWh."""
        return (
            self.cells_series * self.cells_parallel * self.cell_capacity_ah * self.cell_nominal_v
        ) / 1000.0

    @property
    def usable_kwh(self) -> float:
        """Energy the driver can use when new, kWh."""
        return self.gross_kwh * self.usable_fraction

    @property
    def usable_ah(self) -> float:
        """Pack charge over the usable window when new, Ah."""
        return self.cells_parallel * self.cell_capacity_ah * self.usable_fraction

    @property
    def nominal_v(self) -> float:
        """Pack nominal voltage, V."""
        return self.cells_series * self.cell_nominal_v


@dataclass(frozen=True)
class MotorSpec:
    """Traction motor, inverter and single-speed reduction gear.

    Electrical power = mechanical power + ``constant_loss_w`` + ``iron_loss_w_per_rad_s``·ω +
    ``copper_loss_w_per_nm2``·T² (a standard loss split for permanent-magnet machines; the
    coefficients are estimates giving ~93–95 % peak and ~85 % light-load efficiency).
    """

    axle: DriveAxle
    max_power_kw: float
    max_torque_nm: float
    max_regen_kw: float
    max_speed_rpm: float
    gear_ratio: float
    gear_efficiency: float
    constant_loss_w: float
    iron_loss_w_per_rad_s: float
    copper_loss_w_per_nm2: float
    heat_capacity_j_per_k: float
    ua_to_coolant_w_per_k: float


@dataclass(frozen=True)
class ChargingSpec:
    """On-board charger and DC inlet limits, plus the DC taper the BMS applies."""

    ac_max_kw: float
    ac_efficiency: float
    dc_max_kw: float
    dc_efficiency: float
    dc_taper_start_soc: float  # above this SoC the DC current limit falls linearly
    dc_end_c_rate: float  # current limit at 100 % SoC, multiples of capacity
    dc_cold_limit_c: float  # current limit with the pack below 10 °C


@dataclass(frozen=True)
class CabinSpec:
    """Cabin thermal envelope and the HVAC that conditions it."""

    ua_w_per_k: float  # envelope + ventilation losses to ambient
    heat_capacity_j_per_k: float
    heater_max_w: float  # thermal output of heat pump + PTC
    cooler_max_w: float
    heat_pump: bool
    blower_w: float


@dataclass(frozen=True)
class VehicleModel:
    """A battery-electric vehicle model: mass, body, drivetrain, pack, charger and cabin.

    Units are SI unless a name says otherwise. ``rotating_mass_factor`` adds the inertia of
    wheels, shafts and rotor as an equivalent share of the vehicle mass.
    """

    name: str
    description: str
    curb_mass_kg: float
    payload_kg: float  # driver and a little luggage, on top of curb mass
    rotating_mass_factor: float
    drag_coefficient: float
    frontal_area_m2: float
    rolling_resistance: float  # coefficient at nominal tyre pressure
    tire_radius_m: float
    tire_pressure_kpa: float  # placard cold pressure
    wheelbase_mm: int
    steering_ratio: float
    front_brake_share: float  # share of friction-brake energy on the front axle
    aux_load_w: float  # 12 V consumers while the vehicle is on
    lv_battery_ah: float
    top_speed_kmh: float
    battery: BatterySpec
    motor: MotorSpec
    charging: ChargingSpec
    cabin: CabinSpec
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def test_mass_kg(self) -> float:
        """Curb mass plus payload, kg."""
        return self.curb_mass_kg + self.payload_kg

    @property
    def max_speed_mps(self) -> float:
        """Top speed, m/s: the lower of the governed top speed and the motor's speed limit."""
        by_motor = self.motor.max_speed_rpm * 2 * math.pi / 60 / self.motor.gear_ratio
        return min(self.top_speed_kmh / 3.6, by_motor * self.tire_radius_m)


# --- the models ---------------------------------------------------------------------------
# A compact hatchback on a compact modular platform, after the 2020–2023 Peugeot e-208
# (100 kW). Published: curb mass 1455 kg (Peugeot/Autocar), 100 kW and 260 Nm PMSM driving the
# front wheels, 150 km/h governed, 50 kWh gross / 46 kWh usable pack of 18 modules, 400 V
# class (108 cells in series), 7.4 kW AC (11 kW option), 100 kW DC, heat pump. Body: 208 drag
# coefficient 0.29; frontal area from 1745 mm width x 1430 mm height x 0.87 fill. Tyres
# 195/55 R16 (dynamic radius 0.305 m), 250 kPa placard. Estimates: 108s2p of 64 Ah cells (gives
# the published 50 kWh), gear ratio from the top speed at ~12,300 rpm, loss coefficients,
# thermal masses. OCV curve and pack resistance match rest voltages and voltage sag in real
# e-208 trips (see battery.py).
COMPACT_HATCH: Final = VehicleModel(
    name="compact-hatch-50",
    description="Compact hatchback, 100 kW front motor, 50 kWh (46 kWh usable) 400 V pack",
    curb_mass_kg=1455.0,
    payload_kg=100.0,
    rotating_mass_factor=0.04,
    drag_coefficient=0.31,
    frontal_area_m2=2.20,
    rolling_resistance=0.0100,
    tire_radius_m=0.305,
    tire_pressure_kpa=250.0,
    wheelbase_mm=2540,
    steering_ratio=14.5,
    front_brake_share=0.70,
    aux_load_w=280.0,
    lv_battery_ah=60.0,
    top_speed_kmh=150.0,
    battery=BatterySpec(
        cells_series=108,
        cells_parallel=2,
        cell_capacity_ah=64.0,
        cell_nominal_v=3.65,
        usable_fraction=0.92,
        r0_ohm=0.050,
        r1_ohm=0.022,
        tau1_s=40.0,
        cell_v_max=4.17,
        cell_v_min=3.0,
        max_discharge_c=3.0,
        max_regen_c=1.6,
        heat_capacity_j_per_k=3.2e5,
        ua_parked_w_per_k=9.0,
        ua_active_w_per_k=25.0,
        cooling_max_w=3000.0,
        heater_max_w=0.0,
    ),
    motor=MotorSpec(
        axle="front",
        max_power_kw=100.0,
        max_torque_nm=260.0,
        max_regen_kw=60.0,
        max_speed_rpm=12500.0,
        gear_ratio=9.3,
        gear_efficiency=0.975,
        constant_loss_w=300.0,
        iron_loss_w_per_rad_s=1.3,
        copper_loss_w_per_nm2=0.10,
        heat_capacity_j_per_k=1.6e4,
        ua_to_coolant_w_per_k=70.0,
    ),
    charging=ChargingSpec(
        ac_max_kw=7.4,
        ac_efficiency=0.90,
        dc_max_kw=100.0,
        dc_efficiency=0.95,
        dc_taper_start_soc=0.55,
        dc_end_c_rate=0.12,
        dc_cold_limit_c=0.6,
    ),
    cabin=CabinSpec(
        ua_w_per_k=95.0,
        heat_capacity_j_per_k=7.0e4,
        heater_max_w=5000.0,
        cooler_max_w=4000.0,
        heat_pump=True,
        blower_w=120.0,
    ),
)

# A mid-size SUV on a modular electric platform, after the 2021 Volkswagen ID.4 Pro
# (150 kW). Published: curb mass 2124 kg (EU, with driver 75 kg: we count that in payload),
# 150 kW and 310 Nm PMSM on the rear axle, 160 km/h governed, 82 kWh gross / 77 kWh usable
# pack of 12 modules, 288 pouch cells of 78 Ah in 96s3p (352 V nominal), 11 kW AC, 125 kW
# DC, drag coefficient 0.28 with 2.56 m² frontal area, tyres 235/50 R20 (dynamic radius
# 0.36 m), 13.0:1 single-speed gear, 16,000 rpm motor. Estimates: loss coefficients, thermal
# masses, cell resistance (0.8 mΩ class for a 78 Ah pouch cell).
MIDSIZE_SUV: Final = VehicleModel(
    name="midsize-suv-77",
    description="Mid-size SUV, 150 kW rear motor, 82 kWh (77 kWh usable) 352 V pack",
    curb_mass_kg=2049.0,
    payload_kg=100.0,
    rotating_mass_factor=0.04,
    drag_coefficient=0.28,
    frontal_area_m2=2.56,
    rolling_resistance=0.0085,
    tire_radius_m=0.36,
    tire_pressure_kpa=260.0,
    wheelbase_mm=2771,
    steering_ratio=15.2,
    front_brake_share=0.65,
    aux_load_w=330.0,
    lv_battery_ah=68.0,
    top_speed_kmh=160.0,
    battery=BatterySpec(
        cells_series=96,
        cells_parallel=3,
        cell_capacity_ah=78.0,
        cell_nominal_v=3.65,
        usable_fraction=0.939,
        r0_ohm=0.036,
        r1_ohm=0.016,
        tau1_s=40.0,
        cell_v_max=4.17,
        cell_v_min=3.0,
        max_discharge_c=2.5,
        max_regen_c=1.3,
        heat_capacity_j_per_k=4.6e5,
        ua_parked_w_per_k=11.0,
        ua_active_w_per_k=35.0,
        cooling_max_w=5000.0,
        heater_max_w=5500.0,
    ),
    motor=MotorSpec(
        axle="rear",
        max_power_kw=150.0,
        max_torque_nm=310.0,
        max_regen_kw=90.0,
        max_speed_rpm=16000.0,
        gear_ratio=13.0,
        gear_efficiency=0.975,
        constant_loss_w=220.0,
        iron_loss_w_per_rad_s=0.8,
        copper_loss_w_per_nm2=0.07,
        heat_capacity_j_per_k=2.2e4,
        ua_to_coolant_w_per_k=90.0,
    ),
    charging=ChargingSpec(
        ac_max_kw=11.0,
        ac_efficiency=0.91,
        dc_max_kw=125.0,
        dc_efficiency=0.95,
        dc_taper_start_soc=0.50,
        dc_end_c_rate=0.10,
        dc_cold_limit_c=0.5,
    ),
    cabin=CabinSpec(
        ua_w_per_k=125.0,
        heat_capacity_j_per_k=9.5e4,
        heater_max_w=6500.0,
        cooler_max_w=5500.0,
        heat_pump=True,
        blower_w=150.0,
    ),
)

#: Every built-in model, by name.
VEHICLE_MODELS: Final[dict[str, VehicleModel]] = {m.name: m for m in (COMPACT_HATCH, MIDSIZE_SUV)}


def get_vehicle_model(name: str) -> VehicleModel:
    """The built-in model called ``name``.

    Raises:
        SimulationConfigError: no built-in model has that name; the message lists them.
    """
    try:
        return VEHICLE_MODELS[name]
    except KeyError:
        raise SimulationConfigError(
            f"vehicle model {name!r} is not built in; expected one of {sorted(VEHICLE_MODELS)}"
        ) from None
