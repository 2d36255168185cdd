"""The fleet's current state as VSS signals (paths of the built-in catalog), one array each.

Values are in the catalog's units and datatypes (integers rounded and cast, booleans as
``bool``). A signal that exists on only some vehicles — the traction motor sits on the front
axle of one model and the rear of the other — is a ``numpy.ma.MaskedArray`` masked where the
vehicle has no such part. String-typed catalog signals are not produced. ``extra_values``
gives the quantities the reference CAN database carries beyond VSS (inverter temperature,
charge state code, 12 V state of charge…), under descriptive names with units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from drivetrain.sim.physics.battery import ocv_cell
from drivetrain.sim.physics.fleet import FleetPhysics
from drivetrain.sim.physics.state import Condition
from drivetrain.sim.wear.components import (
    PAD_MIN_MM,
    PAD_NEW_MM,
    PAD_WARN_MM,
    TIRE_FAIL_RATIO,
    FleetWear,
)

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: The unit each produced signal is written in (None: boolean or dimensionless). A test checks
#: every entry against the catalog, so a scaling slip or a catalog change is caught.
SIGNAL_UNITS: Final[dict[str, str | None]] = {
    "Vehicle.Speed": "km/h",
    "Vehicle.IsMoving": None,
    "Vehicle.TraveledDistance": "m",
    "Vehicle.TraveledDistanceSinceStart": "m",
    "Vehicle.TripDuration": "s",
    "Vehicle.AverageSpeed": "km/h",
    "Vehicle.IsBrokenDown": None,
    "Vehicle.Acceleration.Longitudinal": "m/s^2",
    "Vehicle.Acceleration.Lateral": "m/s^2",
    "Vehicle.AngularVelocity.Yaw": "degrees/s",
    "Vehicle.Orientation.Yaw": "degrees",
    "Vehicle.Orientation.Pitch": "degrees",
    "Vehicle.CurrentLocation.Latitude": "degrees",
    "Vehicle.CurrentLocation.Longitude": "degrees",
    "Vehicle.CurrentLocation.Altitude": "m",
    "Vehicle.CurrentLocation.Heading": "degrees",
    "Vehicle.CurrentLocation.HorizontalAccuracy": "m",
    "Vehicle.CurrentLocation.VerticalAccuracy": "m",
    "Vehicle.Exterior.AirTemperature": "Celsius",
    "Vehicle.Exterior.AirPressure": "hPa",
    "Vehicle.Chassis.SteeringWheel.Angle": "degrees",
    "Vehicle.Chassis.Accelerator.PedalPosition": "percent",
    "Vehicle.Chassis.Brake.PedalPosition": "percent",
    "Vehicle.Chassis.ParkingBrake.IsEngaged": None,
    "Vehicle.Chassis.Axle.Row1.Wheel.Left.Speed": "km/h",
    "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": "kPa",
    "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.AirTemperature": "Celsius",
    "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.IsPressureLow": None,
    "Vehicle.Chassis.Axle.Row1.Wheel.Left.Brake.PadWear": "percent",
    "Vehicle.Chassis.Axle.Row1.Wheel.Left.Brake.IsBrakesWorn": None,
    "Vehicle.Chassis.Axle.Row1.Wheel.Right.Speed": "km/h",
    "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure": "kPa",
    "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.AirTemperature": "Celsius",
    "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.IsPressureLow": None,
    "Vehicle.Chassis.Axle.Row1.Wheel.Right.Brake.PadWear": "percent",
    "Vehicle.Chassis.Axle.Row1.Wheel.Right.Brake.IsBrakesWorn": None,
    "Vehicle.Chassis.Axle.Row2.Wheel.Left.Speed": "km/h",
    "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure": "kPa",
    "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.AirTemperature": "Celsius",
    "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.IsPressureLow": None,
    "Vehicle.Chassis.Axle.Row2.Wheel.Left.Brake.PadWear": "percent",
    "Vehicle.Chassis.Axle.Row2.Wheel.Left.Brake.IsBrakesWorn": None,
    "Vehicle.Chassis.Axle.Row2.Wheel.Right.Speed": "km/h",
    "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure": "kPa",
    "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.AirTemperature": "Celsius",
    "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.IsPressureLow": None,
    "Vehicle.Chassis.Axle.Row2.Wheel.Right.Brake.PadWear": "percent",
    "Vehicle.Chassis.Axle.Row2.Wheel.Right.Brake.IsBrakesWorn": None,
    "Vehicle.Powertrain.ElectricMotor.Front.Speed": "rpm",
    "Vehicle.Powertrain.ElectricMotor.Front.Torque": "Nm",
    "Vehicle.Powertrain.ElectricMotor.Front.Power": "kW",
    "Vehicle.Powertrain.ElectricMotor.Front.Temperature": "Celsius",
    "Vehicle.Powertrain.ElectricMotor.Front.EngineCoolant.Temperature": "Celsius",
    "Vehicle.Powertrain.ElectricMotor.Front.TimeInUse": "h",
    "Vehicle.Powertrain.ElectricMotor.Rear.Speed": "rpm",
    "Vehicle.Powertrain.ElectricMotor.Rear.Torque": "Nm",
    "Vehicle.Powertrain.ElectricMotor.Rear.Power": "kW",
    "Vehicle.Powertrain.ElectricMotor.Rear.Temperature": "Celsius",
    "Vehicle.Powertrain.ElectricMotor.Rear.EngineCoolant.Temperature": "Celsius",
    "Vehicle.Powertrain.ElectricMotor.Rear.TimeInUse": "h",
    "Vehicle.Powertrain.Range": "m",
    "Vehicle.Powertrain.TractionBattery.Range": "m",
    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": "percent",
    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed": "percent",
    "Vehicle.Powertrain.TractionBattery.StateOfCharge.CurrentEnergy": "kWh",
    "Vehicle.Powertrain.TractionBattery.StateOfHealth": "percent",
    "Vehicle.Powertrain.TractionBattery.NetCapacity": "kWh",
    "Vehicle.Powertrain.TractionBattery.CurrentVoltage": "V",
    "Vehicle.Powertrain.TractionBattery.CurrentCurrent": "A",
    "Vehicle.Powertrain.TractionBattery.CurrentPower": "W",
    "Vehicle.Powertrain.TractionBattery.PowerLoss": "W",
    "Vehicle.Powertrain.TractionBattery.CellVoltage.Max": "V",
    "Vehicle.Powertrain.TractionBattery.CellVoltage.Min": "V",
    "Vehicle.Powertrain.TractionBattery.CellVoltage.IdMin": None,
    "Vehicle.Powertrain.TractionBattery.Temperature.Average": "Celsius",
    "Vehicle.Powertrain.TractionBattery.Temperature.Min": "Celsius",
    "Vehicle.Powertrain.TractionBattery.Temperature.Max": "Celsius",
    "Vehicle.Powertrain.TractionBattery.AccumulatedConsumedEnergy": "kWh",
    "Vehicle.Powertrain.TractionBattery.AccumulatedChargedEnergy": "kWh",
    "Vehicle.Powertrain.TractionBattery.AccumulatedConsumedThroughput": "Ah",
    "Vehicle.Powertrain.TractionBattery.AccumulatedChargedThroughput": "Ah",
    "Vehicle.Powertrain.TractionBattery.BatteryConditioning.IsActive": None,
    "Vehicle.Powertrain.TractionBattery.DCDC.PowerLoss": "W",
    "Vehicle.Powertrain.TractionBattery.DCDC.Temperature": "Celsius",
    "Vehicle.Powertrain.AccumulatedBrakingEnergy": "kWh",
    "Vehicle.Powertrain.TractionBattery.Charging.IsCharging": None,
    "Vehicle.Powertrain.TractionBattery.Charging.IsDischarging": None,
    "Vehicle.Powertrain.TractionBattery.Charging.ChargingPort.AnyPosition.IsChargingCableConnected": None,
    "Vehicle.Powertrain.TractionBattery.Charging.ChargingPort.AnyPosition.IsChargingCableLocked": None,
    "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit": "percent",
    "Vehicle.Powertrain.TractionBattery.Charging.ChargeCurrent.DC": "A",
    "Vehicle.Powertrain.TractionBattery.Charging.ChargeVoltage.DC": "V",
    "Vehicle.Powertrain.TractionBattery.Charging.ChargeCurrent.Phase1": "A",
    "Vehicle.Powertrain.TractionBattery.Charging.ChargeVoltage.Phase1": "V",
    "Vehicle.Powertrain.TractionBattery.Charging.PowerLoss": "W",
    "Vehicle.Powertrain.TractionBattery.Charging.TimeToComplete": "s",
    "Vehicle.Powertrain.TractionBattery.Charging.ChargeRate": "km/h",
    "Vehicle.Powertrain.Transmission.TravelledDistance": "km",
    "Vehicle.Powertrain.Transmission.Temperature": "Celsius",
    "Vehicle.Powertrain.Transmission.IsParkLockEngaged": None,
    "Vehicle.Powertrain.Transmission.SelectedGear": None,
    "Vehicle.LowVoltageBattery.CurrentVoltage": "V",
    "Vehicle.LowVoltageBattery.CurrentCurrent": "A",
    "Vehicle.Cabin.HVAC.AmbientAirTemperature": "Celsius",
    "Vehicle.Cabin.HVAC.IsAirConditioningActive": None,
    "Vehicle.Cabin.HVAC.Station.Row1.Driver.FanSpeed": "percent",
    "Vehicle.Diagnostics.DTCCount": None,
    "Vehicle.Service.IsServiceDue": None,
}


_WHEELS = ("Row1.Wheel.Left", "Row1.Wheel.Right", "Row2.Wheel.Left", "Row2.Wheel.Right")
_TRACK_M = 1.55


@dataclass
class Navigation:
    """Where each vehicle is and how it is turning (world state), arrays of ``n``."""

    latitude: F64
    longitude: F64
    altitude_m: F64
    heading_deg: F64
    yaw_rate_dps: F64
    horizontal_accuracy_m: F64
    ambient_c: F64
    plugged: B
    charger_dc: B
    charge_limit: F64
    driving: B
    broken_down: B


def _u8(x: F64) -> npt.NDArray[np.uint8]:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _u16(x: F64) -> npt.NDArray[np.uint16]:
    return np.clip(np.rint(x), 0, 65535).astype(np.uint16)


def _i16(x: F64) -> npt.NDArray[np.int16]:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def _u32(x: F64) -> npt.NDArray[np.uint32]:
    return np.clip(np.rint(np.nan_to_num(x, posinf=4e9)), 0, 4_294_967_295).astype(np.uint32)


def range_m(physics: FleetPhysics) -> F64:
    """Remaining range (m): usable energy left over the vehicle's own net consumption since the
    simulation began (discharge minus regeneration per km), or a class default of 160 Wh/km
    scaled by mass until it has driven 20 km."""
    p, s = physics.params, physics.state
    energy_kwh = s.soc * p.usable_kwh * s.soh
    driven_km = (s.odometer_m - physics.start_odometer_m) / 1000.0
    net_kwh = s.discharged_kwh - s.regen_kwh
    lifetime = net_kwh / np.maximum(driven_km, 1.0)
    usable = (driven_km > 20.0) & (lifetime > 0.08) & (lifetime < 0.5)
    per_km = np.where(usable, lifetime, 0.16 * p.mass_kg / 1555.0)
    return energy_kwh / per_km * 1000.0


def vss_values(
    physics: FleetPhysics, wear: FleetWear, condition: Condition, nav: Navigation
) -> dict[str, npt.NDArray[np.generic]]:
    """Every VSS signal the simulator produces, keyed by catalog path."""
    p, s = physics.params, physics.state
    n = physics.n
    speed_kmh = s.speed_mps * 3.6
    moving = s.speed_mps > 0.05
    soh = s.soh
    out: dict[str, npt.NDArray[np.generic]] = {}

    out["Vehicle.Speed"] = speed_kmh
    out["Vehicle.IsMoving"] = moving
    out["Vehicle.TraveledDistance"] = _u32(s.odometer_m)
    out["Vehicle.TraveledDistanceSinceStart"] = _u32(s.trip_distance_m)
    out["Vehicle.TripDuration"] = s.trip_time_s.copy()
    out["Vehicle.AverageSpeed"] = np.where(
        s.trip_time_s > 0, s.trip_distance_m / np.maximum(s.trip_time_s, 1.0) * 3.6, 0.0
    )
    out["Vehicle.IsBrokenDown"] = nav.broken_down.copy()
    out["Vehicle.Acceleration.Longitudinal"] = s.accel_mps2.copy()
    out["Vehicle.Acceleration.Lateral"] = s.speed_mps * np.radians(nav.yaw_rate_dps)
    out["Vehicle.AngularVelocity.Yaw"] = nav.yaw_rate_dps.copy()
    out["Vehicle.Orientation.Yaw"] = nav.heading_deg % 360.0
    # Longitudinal: positive = nose up; from the acceleration the body pitches by ~0.3°/(m/s²).
    out["Vehicle.Orientation.Pitch"] = np.clip(-0.3 * s.accel_mps2, -180, 180)
    out["Vehicle.CurrentLocation.Latitude"] = nav.latitude.copy()
    out["Vehicle.CurrentLocation.Longitude"] = nav.longitude.copy()
    out["Vehicle.CurrentLocation.Altitude"] = nav.altitude_m.copy()
    out["Vehicle.CurrentLocation.Heading"] = nav.heading_deg % 360.0
    out["Vehicle.CurrentLocation.HorizontalAccuracy"] = nav.horizontal_accuracy_m.copy()
    out["Vehicle.CurrentLocation.VerticalAccuracy"] = nav.horizontal_accuracy_m * 1.6
    out["Vehicle.Exterior.AirTemperature"] = nav.ambient_c.copy()
    out["Vehicle.Exterior.AirPressure"] = 1013.25 * np.exp(-nav.altitude_m / 8434.0)

    # steering: bicycle model, steering-wheel angle = ratio x road-wheel angle
    road_wheel = np.degrees(
        np.arctan(p.wheelbase_m * np.radians(nav.yaw_rate_dps) / np.maximum(s.speed_mps, 1.0))
    )
    out["Vehicle.Chassis.SteeringWheel.Angle"] = _i16(p.steering_ratio * road_wheel)
    out["Vehicle.Chassis.Accelerator.PedalPosition"] = _u8(s.accel_pedal_pct)
    out["Vehicle.Chassis.Brake.PedalPosition"] = _u8(s.brake_pedal_pct)
    out["Vehicle.Chassis.ParkingBrake.IsEngaged"] = ~nav.driving

    # wheels: turning spreads left/right; an under-inflated tyre rolls on a smaller radius
    # and turns faster (what indirect TPMS detects)
    ratio = condition.tire_pressure_ratio
    spread = np.radians(nav.yaw_rate_dps) * _TRACK_M / 2.0 * 3.6
    tire_kpa = p.tire_pressure_kpa[:, None] * ratio * (s.tire_temp_c + 273.15) / 293.15
    for w, corner in enumerate(_WHEELS):
        side = -1.0 if corner.endswith("Left") else 1.0
        radius_factor = 1.0 + 0.03 * (1.0 - ratio[:, w])
        base = f"Vehicle.Chassis.Axle.{corner}"
        out[f"{base}.Speed"] = np.maximum(speed_kmh + side * spread * moving, 0.0) * radius_factor
        out[f"{base}.Tire.Pressure"] = _u16(tire_kpa[:, w])
        out[f"{base}.Tire.AirTemperature"] = s.tire_temp_c[:, w].copy()
        out[f"{base}.Tire.IsPressureLow"] = tire_kpa[:, w] < TIRE_FAIL_RATIO * p.tire_pressure_kpa
        worn = (PAD_NEW_MM[w] - wear.pad_mm[:, w]) / (PAD_NEW_MM[w] - PAD_MIN_MM) * 100.0
        out[f"{base}.Brake.PadWear"] = _u8(np.clip(worn, 0.0, 100.0))
        out[f"{base}.Brake.IsBrakesWorn"] = wear.pad_mm[:, w] < PAD_WARN_MM

    # traction motor: under Front or Rear by model
    for axle, has in (("Front", p.front_drive), ("Rear", ~p.front_drive)):
        if not has.any():
            continue
        mask = ~has
        base = f"Vehicle.Powertrain.ElectricMotor.{axle}"
        values: dict[str, npt.NDArray[np.generic]] = {
            "Speed": s.motor_speed_rad_s * 60.0 / (2 * np.pi),
            "Torque": _i16(s.motor_torque_nm),
            "Power": _i16(s.motor_power_w / 1000.0),
            "Temperature": s.motor_temp_c.copy(),
            "EngineCoolant.Temperature": s.coolant_temp_c.copy(),
            "TimeInUse": s.motor_time_in_use_s / 3600.0,
        }
        for leaf, v in values.items():
            out[f"{base}.{leaf}"] = np.ma.MaskedArray(v, mask=mask) if mask.any() else v

    tb = "Vehicle.Powertrain.TractionBattery"
    out["Vehicle.Powertrain.Range"] = _u32(range_m(physics))
    out[f"{tb}.Range"] = _u32(range_m(physics))
    out[f"{tb}.StateOfCharge.Current"] = s.soc * 100.0
    out[f"{tb}.StateOfCharge.Displayed"] = np.clip(np.round(s.soc * 100.0), 0.0, 100.0)
    out[f"{tb}.StateOfCharge.CurrentEnergy"] = s.soc * p.usable_kwh * soh
    out[f"{tb}.StateOfHealth"] = soh * 100.0
    out[f"{tb}.NetCapacity"] = _u16(p.usable_kwh * soh)
    out[f"{tb}.CurrentVoltage"] = np.maximum(s.battery_voltage_v, 0.0)
    out[f"{tb}.CurrentCurrent"] = -s.battery_current_a
    out[f"{tb}.CurrentPower"] = -s.battery_current_a * s.battery_voltage_v
    out[f"{tb}.PowerLoss"] = np.maximum(s.battery_power_loss_w, 0.0)
    # Cells in series share the pack voltage; the weak cell sits lower by its SoC deficit and,
    # with ~30 % more resistance, sags more under load.
    cell_mean = s.battery_voltage_v / p.cells_series
    weak = (
        ocv_cell(np.clip(s.soc - condition.weak_cell_deficit, 0.0, 1.0))
        - (ocv_cell(s.soc) - cell_mean) * 1.3
    )
    out[f"{tb}.CellVoltage.Max"] = cell_mean + 0.004
    out[f"{tb}.CellVoltage.Min"] = np.minimum(weak, cell_mean - 0.002)
    out[f"{tb}.CellVoltage.IdMin"] = _u16(wear.plan.weak_cell_index.astype(float) + 1.0)
    out[f"{tb}.Temperature.Average"] = s.pack_temp_c.copy()
    out[f"{tb}.Temperature.Min"] = s.pack_temp_c - 0.8 - 0.02 * np.abs(s.battery_current_a) ** 0.5
    out[f"{tb}.Temperature.Max"] = s.pack_temp_c + 1.0 + 0.05 * np.abs(s.battery_current_a) ** 0.5
    out[f"{tb}.AccumulatedConsumedEnergy"] = s.discharged_kwh.copy()
    out[f"{tb}.AccumulatedChargedEnergy"] = s.charged_kwh.copy()
    out[f"{tb}.AccumulatedConsumedThroughput"] = s.discharged_ah.copy()
    out[f"{tb}.AccumulatedChargedThroughput"] = s.charged_ah.copy()
    out[f"{tb}.BatteryConditioning.IsActive"] = s.battery_conditioning.copy()
    out[f"{tb}.DCDC.PowerLoss"] = s.dcdc_loss_w.copy()
    out[f"{tb}.DCDC.Temperature"] = s.dcdc_temp_c.copy()
    out["Vehicle.Powertrain.AccumulatedBrakingEnergy"] = s.regen_kwh.copy()

    ch = f"{tb}.Charging"
    out[f"{ch}.IsCharging"] = s.charging.copy()
    out[f"{ch}.IsDischarging"] = np.zeros(n, dtype=bool)
    out[f"{ch}.ChargingPort.AnyPosition.IsChargingCableConnected"] = nav.plugged.copy()
    out[f"{ch}.ChargingPort.AnyPosition.IsChargingCableLocked"] = nav.plugged.copy()
    out[f"{ch}.ChargeLimit"] = _u8(nav.charge_limit * 100.0)
    dc_on = s.charging & nav.charger_dc
    ac_on = s.charging & ~nav.charger_dc
    out[f"{ch}.ChargeCurrent.DC"] = np.where(dc_on, s.charge_current_a, 0.0)
    out[f"{ch}.ChargeVoltage.DC"] = np.where(dc_on, s.charge_voltage_v, 0.0)
    out[f"{ch}.ChargeCurrent.Phase1"] = np.where(ac_on, s.charge_current_a, 0.0)
    out[f"{ch}.ChargeVoltage.Phase1"] = np.where(ac_on, 230.0, 0.0)
    out[f"{ch}.PowerLoss"] = s.charger_loss_w.copy()
    battery_in_w = np.maximum(-s.battery_current_a * s.battery_voltage_v, 0.0)
    remaining_kwh = np.maximum(nav.charge_limit - s.soc, 0.0) * p.usable_kwh * soh
    out[f"{ch}.TimeToComplete"] = _u32(
        np.where(
            s.charging & (battery_in_w > 100.0),
            remaining_kwh * 3.6e6 / np.maximum(battery_in_w, 1.0),
            0.0,
        )
    )
    out[f"{ch}.ChargeRate"] = np.where(
        s.charging, battery_in_w / 1000.0 / np.maximum(p.mass_kg / 1555.0 * 0.16, 0.05), 0.0
    )

    out["Vehicle.Powertrain.Transmission.TravelledDistance"] = s.odometer_m / 1000.0
    out["Vehicle.Powertrain.Transmission.Temperature"] = s.transmission_temp_c.copy()
    out["Vehicle.Powertrain.Transmission.IsParkLockEngaged"] = ~nav.driving
    # VSS SelectedGear: 126 = park, 127 = drive
    out["Vehicle.Powertrain.Transmission.SelectedGear"] = np.where(nav.driving, 127, 126).astype(
        np.int8
    )

    out["Vehicle.LowVoltageBattery.CurrentVoltage"] = s.lv_voltage_v.copy()
    out["Vehicle.LowVoltageBattery.CurrentCurrent"] = s.lv_current_a.copy()
    out["Vehicle.Cabin.HVAC.AmbientAirTemperature"] = s.cabin_temp_c.copy()
    out["Vehicle.Cabin.HVAC.IsAirConditioningActive"] = s.hvac_thermal_w < -50.0
    out["Vehicle.Cabin.HVAC.Station.Row1.Driver.FanSpeed"] = _u8(
        np.where(
            np.abs(s.hvac_thermal_w) > 0,
            20.0 + 80.0 * np.minimum(np.abs(s.hvac_thermal_w) / p.cabin_heater_max_w, 1.0),
            0.0,
        )
    )
    out["Vehicle.Diagnostics.DTCCount"] = _u8(
        np.sum([f.astype(float) for f in wear.failed.values()], axis=0)
    )
    out["Vehicle.Service.IsServiceDue"] = np.logical_or.reduce([f for f in wear.failed.values()])
    return out


def extra_values(
    physics: FleetPhysics, wear: FleetWear, nav: Navigation
) -> dict[str, npt.NDArray[np.generic]]:
    """Quantities the reference CAN database carries that the VSS catalog has no leaf for."""
    s = physics.state
    state_code = np.where(
        ~nav.plugged, 0, np.where(s.charging, 2, np.where(s.soc >= nav.charge_limit - 0.005, 3, 1))
    )
    return {
        "inverter_temperature_c": s.inverter_temp_c.copy(),
        "coolant_inlet_temperature_c": s.coolant_temp_c.copy(),
        "brake_temperature_c": s.brake_temp_c.max(axis=1),
        "lv_battery_soc_pct": s.lv_soc * 100.0,
        "lv_battery_temperature_c": nav.ambient_c + 0.2 * (s.cabin_temp_c - nav.ambient_c),
        "charge_power_kw": s.charge_power_w / 1000.0,
        "charge_state_code": state_code.astype(np.int8),  # 0 not connected .. 3 complete
        "drive_ready": nav.driving.copy(),
        "brake_light_on": s.brake_pedal_pct > 1.0,
        "pad_thickness_min_mm": wear.pad_mm.min(axis=1),
    }
