"""A short, plausible drive of the reference vehicle, as physical signal values over time.

Deterministic from a random generator: a drive away from a stop, a cruise with some steering,
braking to a halt, then parking and DC fast charging. Simple physics (road load, a single-speed
rear motor, a 108-cell pack with internal resistance) keeps the values consistent with each
other. This is only what the demo's CAN act needs; it is not the simulator.

Every signal is computed on a 10 ms grid and sampled at each message's cycle time; values are
clipped to the DBC's ranges, as a sensor saturates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

GRID_S = 0.01
DRIVE_S = 45.0
CHARGE_S = 15.0
DURATION_S = DRIVE_S + CHARGE_S

# vehicle constants
MASS_KG = 2100.0
CDA_M2 = 0.62
CRR = 0.011
WHEEL_RADIUS_M = 0.34
GEAR_RATIO = 9.04
WHEELBASE_M = 2.9
STEERING_RATIO = 15.0
CELLS_IN_SERIES = 108
PACK_CAPACITY_AH = 200.0
PACK_RESISTANCE_OHM = 0.08
AUX_POWER_W = 1200.0
DC_CHARGE_CURRENT_A = 125.0
GEAR_P, GEAR_D = 0, 3
CHARGE_NOT_CONNECTED, CHARGE_CONNECTED, CHARGE_CHARGING = 0, 1, 2

#: Where drives start: (latitude, longitude, altitude m) of a few cities.
START_POINTS = (
    (48.1372, 11.5755, 519.0),  # Munich
    (57.7089, 11.9746, 12.0),  # Gothenburg
    (42.3314, -83.0458, 183.0),  # Detroit
    (48.7758, 9.1829, 245.0),  # Stuttgart
    (35.6762, 139.6503, 40.0),  # Tokyo
)


@dataclass(frozen=True)
class DriveProfile:
    """Every signal of the reference DBC on the 10 ms grid, by DBC signal name."""

    time_s: FloatArray
    signals: dict[str, FloatArray]

    def sample(self, name: str, times_s: FloatArray) -> FloatArray:
        """The signal ``name`` at ``times_s`` (nearest grid point at or before each time).

        Raises:
            KeyError: the profile has no signal ``name``.
        """
        index = np.clip((times_s / GRID_S).astype(np.int64), 0, len(self.time_s) - 1)
        return self.signals[name][index]


def _smoothstep(x: FloatArray) -> FloatArray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def drive_profile(rng: np.random.Generator) -> DriveProfile:
    """A deterministic drive-then-charge profile drawn from ``rng`` (see the module docstring)."""
    t = np.arange(0.0, DURATION_S, GRID_S)
    driving = t < DRIVE_S
    cruise_kmh = rng.uniform(45.0, 95.0)
    ambient_c = rng.uniform(-5.0, 32.0)
    soc0 = rng.uniform(35.0, 85.0)
    lat0, lon0, alt0 = START_POINTS[int(rng.integers(len(START_POINTS)))]
    heading0 = rng.uniform(0.0, 360.0)
    odometer0_km = rng.uniform(1_000.0, 80_000.0)
    wobble_phase = rng.uniform(0.0, 2 * np.pi, 3)

    # --- longitudinal: speed, acceleration, motor torque and speed, pedals -------------------
    up = 1.0 - np.exp(-t / 7.0)
    down = _smoothstep((DRIVE_S - 3.0 - t) / 12.0)
    wobble = 1.0 + 0.06 * np.sin(2 * np.pi * t / 17.0 + wobble_phase[0])
    speed_kmh = np.where(driving, cruise_kmh * up * down * wobble, 0.0)
    speed_ms = speed_kmh / 3.6
    accel = np.gradient(speed_ms, GRID_S)
    moving = speed_ms > 0.05
    road_load = 0.5 * 1.2 * CDA_M2 * speed_ms**2 + np.where(moving, MASS_KG * 9.81 * CRR, 0.0)
    force = MASS_KG * accel + road_load
    wheel_torque = force * WHEEL_RADIUS_M
    motor_torque = np.clip(wheel_torque / GEAR_RATIO, -150.0, 600.0)  # regen limited to -150 Nm
    friction_brake = np.clip(-(wheel_torque / GEAR_RATIO) - 150.0, 0.0, None)
    motor_rpm = speed_ms / WHEEL_RADIUS_M * GEAR_RATIO * 60.0 / (2 * np.pi)
    accel_pedal = np.clip(motor_torque / 600.0 * 100.0 * 1.4, 0.0, 100.0)
    brake_pedal = np.clip(
        friction_brake / 4.0 + np.where(driving & ~moving & (t > 1), 20.0, 0.0), 0, 100
    )

    # --- traction battery -------------------------------------------------------------------
    omega = motor_rpm * 2 * np.pi / 60.0
    mech_w = motor_torque * omega
    elec_w = np.where(mech_w >= 0, mech_w / 0.92, mech_w * 0.88) + AUX_POWER_W
    charging_phase = ~driving
    plugged = charging_phase & (t >= DRIVE_S + 1.0)
    charging = charging_phase & (t >= DRIVE_S + 3.0)
    ramp = _smoothstep((t - DRIVE_S - 3.0) / 4.0)
    soc = np.empty_like(t)
    pack_current = np.empty_like(t)
    pack_voltage = np.empty_like(t)
    soc_now = soc0
    for i in range(len(t)):  # the state of charge integrates the current: one step at a time
        ocv = CELLS_IN_SERIES * (3.0 + 1.2 * soc_now / 100.0)
        if charging[i]:
            current = -DC_CHARGE_CURRENT_A * ramp[i]
        else:
            current = elec_w[i] / ocv if driving[i] else AUX_POWER_W / 4 / ocv
        soc[i], pack_current[i] = soc_now, current
        pack_voltage[i] = ocv - current * PACK_RESISTANCE_OHM
        soc_now -= current * GRID_S / 3600.0 / PACK_CAPACITY_AH * 100.0
    cell_v = pack_voltage / CELLS_IN_SERIES
    heat = np.cumsum(pack_current**2 * PACK_RESISTANCE_OHM) * GRID_S  # joules
    pack_temp = ambient_c + 6.0 + heat / 150_000.0
    motor_temp = ambient_c + 15.0 + np.cumsum(np.abs(mech_w)) * GRID_S / 400_000.0

    # --- steering, wheels, position ----------------------------------------------------------
    steer_deg = np.where(moving, 25.0 * np.sin(2 * np.pi * t / 11.0 + wobble_phase[1]), 0.0)
    steer_deg += np.where(moving, 60.0 * np.exp(-(((t - 20.0) / 3.0) ** 2)), 0.0)  # a bend
    steer_rate = np.gradient(steer_deg, GRID_S)
    road_wheel = np.radians(steer_deg / STEERING_RATIO)
    yaw_rate = speed_ms / WHEELBASE_M * np.tan(road_wheel)  # rad/s, positive to the left
    heading = (heading0 - np.degrees(np.cumsum(yaw_rate) * GRID_S)) % 360.0
    step_m = speed_ms * GRID_S
    north = np.cumsum(step_m * np.cos(np.radians(heading)))
    east = np.cumsum(step_m * np.sin(np.radians(heading)))
    latitude = lat0 + north / 111_320.0
    longitude = lon0 + east / (111_320.0 * np.cos(np.radians(lat0)))
    turn = np.clip(yaw_rate * 0.8, -0.05, 0.05)  # outer wheels run faster in a bend
    distance_km = np.cumsum(step_m) / 1000.0

    # --- cabin, 12 V, odometer ---------------------------------------------------------------
    target_c = 21.0 + float(rng.integers(0, 4))
    cabin_c = target_c + (ambient_c - target_c) * np.exp(-t / 240.0)
    ones = np.ones_like(t)
    signals: dict[str, FloatArray] = {
        "VehicleSpeed": speed_kmh,
        "AccelPedalPos": accel_pedal,
        "BrakePedalPos": brake_pedal,
        "GearSelected": np.where(driving & (t > 0.5) & (t < DRIVE_S - 0.5), GEAR_D, GEAR_P) * ones,
        "DriveReady": driving.astype(np.float64),
        "BrakeLightOn": (brake_pedal > 2.0).astype(np.float64),
        "LongitudinalAccel": accel,
        "MotorTorque": motor_torque,
        "MotorSpeed": motor_rpm,
        "MotorTemp": motor_temp,
        "InverterTemp": motor_temp - 8.0,
        "SteeringAngle": steer_deg,
        "SteeringRate": steer_rate,
        "WheelSpeedFL": speed_kmh * (1 - turn),
        "WheelSpeedFR": speed_kmh * (1 + turn),
        "WheelSpeedRL": speed_kmh * (1 - turn) * 1.003,
        "WheelSpeedRR": speed_kmh * (1 + turn) * 1.003,
        "PackVoltage": pack_voltage,
        "PackCurrent": pack_current,
        "PackSoC": soc,
        "CellVoltMin": cell_v - 0.012,
        "CellVoltMax": cell_v + 0.009,
        "CellVoltMinId": float(rng.integers(0, CELLS_IN_SERIES)) * ones,
        "CellVoltMaxId": float(rng.integers(0, CELLS_IN_SERIES)) * ones,
        "CellTempMin": np.floor(pack_temp - 1.5),
        "CellTempMax": np.ceil(pack_temp + 2.0),
        "CellTempAvg": pack_temp,
        "CoolantInletTemp": np.round(pack_temp - 3.0),
        "ChargeState": np.select(
            [charging, plugged], [CHARGE_CHARGING, CHARGE_CONNECTED], CHARGE_NOT_CONNECTED
        )
        * ones,
        "ChargePlugConnected": plugged.astype(np.float64),
        "ChargeLimit": float(rng.choice([80, 90, 100])) * ones,
        "ChargeCurrent": np.where(charging, -pack_current, 0.0),
        "ChargeVoltage": np.where(plugged, pack_voltage + 1.5, 0.0),
        "ChargePower": np.where(charging, -pack_current * pack_voltage / 1000.0, 0.0),
        "Latitude": latitude,
        "Longitude": longitude,
        "Heading": heading,
        "Altitude": alt0 + 4.0 * np.sin(2 * np.pi * t / 40.0 + wobble_phase[2]),
        "GnssSpeed": speed_kmh,
        "FixType": 2.0 * ones,
        "SatellitesUsed": float(rng.integers(7, 16)) * ones,
        "CabinTemp": cabin_c,
        "AmbientTemp": ambient_c * ones,
        "TargetTemp": target_c * ones,
        "FanSpeed": np.clip(20.0 + 3.0 * np.abs(cabin_c - target_c), 0, 100),
        "AcActive": float(ambient_c > 20.0) * ones,
        "Recirculation": 0.0 * ones,
        "LvBatteryVoltage": np.where(driving | charging, 14.1, 12.6),
        "LvBatteryCurrent": np.where(driving | charging, -6.5, 1.2),
        "LvBatteryTemp": (ambient_c + 3.0) * ones,
        "LvBatterySoC": 86.0 * ones,
        "Odometer": odometer0_km + distance_km,
        "EstimatedRange": soc * 4.6,
        "TripDistance": distance_km,
    }
    return DriveProfile(time_s=t, signals=signals)
