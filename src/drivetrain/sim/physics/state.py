"""Inputs and state of the fleet physics: what the driver/world asks for each step, what the
component wear imposes, and the per-vehicle state arrays the step advances."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def _full(n: int, value: float) -> F64:
    return np.full(n, value, dtype=np.float64)


@dataclass
class Controls:
    """What the drivers and the world ask of each vehicle for one step (arrays of ``n``).

    ``target_speed_mps`` is the speed the driver wants at the end of the step; the vehicle
    gets there as far as ``accel_limit_mps2``/``decel_limit_mps2``, traction and battery allow.
    ``charger_w`` is the power a connected charger offers (0 when unplugged), ``charger_dc``
    says whether it is a DC charger, ``charge_limit`` the SoC (fraction) where charging stops.
    """

    target_speed_mps: F64
    ambient_c: F64
    grade: F64
    drive_active: B
    accel_limit_mps2: F64
    decel_limit_mps2: F64
    cabin_setpoint_c: F64
    hvac_on: B
    charger_w: F64
    charger_dc: B
    charge_limit: F64
    altitude_m: F64

    @classmethod
    def idle(cls, n: int, ambient_c: float = 20.0) -> Controls:
        """Parked, unplugged, HVAC off, flat road at sea level."""
        return cls(
            target_speed_mps=_full(n, 0.0),
            ambient_c=_full(n, ambient_c),
            grade=_full(n, 0.0),
            drive_active=np.zeros(n, dtype=bool),
            accel_limit_mps2=_full(n, 2.5),
            decel_limit_mps2=_full(n, 3.0),
            cabin_setpoint_c=_full(n, 21.0),
            hvac_on=np.zeros(n, dtype=bool),
            charger_w=_full(n, 0.0),
            charger_dc=np.zeros(n, dtype=bool),
            charge_limit=_full(n, 0.9),
            altitude_m=_full(n, 0.0),
        )


@dataclass
class Condition:
    """What component wear imposes on the physics (arrays; healthy values by default).

    ``tire_pressure_ratio`` is each tyre's cold pressure over placard, shape ``(n, 4)`` in the
    order front-left, front-right, rear-left, rear-right. ``brake_drag_n`` is a dragging
    caliper's force per wheel, ``(n, 4)``. ``coolant_flow`` is the pump's flow as a fraction of
    nominal. ``lv_capacity`` the 12 V battery's capacity fraction. ``weak_cell_deficit`` the
    weakest cell's SoC shortfall (fraction) against the pack.
    """

    tire_pressure_ratio: F64
    brake_drag_n: F64
    coolant_flow: F64
    lv_capacity: F64
    lv_parasitic_a: F64
    weak_cell_deficit: F64

    @classmethod
    def healthy(cls, n: int) -> Condition:
        """Every component as new."""
        return cls(
            tire_pressure_ratio=np.ones((n, 4)),
            brake_drag_n=np.zeros((n, 4)),
            coolant_flow=np.ones(n),
            lv_capacity=np.ones(n),
            lv_parasitic_a=np.zeros(n),
            weak_cell_deficit=np.zeros(n),
        )


@dataclass
class PhysicsState:
    """Per-vehicle state the step advances. Units in the names; signs as documented.

    ``battery_current_a`` is positive when discharging (the VSS signal has the opposite sign);
    ``fade_*`` are capacity fade fractions (SoH = 1 − calendar − cycle fade).
    """

    speed_mps: F64
    accel_mps2: F64
    odometer_m: F64
    trip_distance_m: F64
    trip_time_s: F64
    motor_torque_nm: F64
    motor_speed_rad_s: F64
    motor_power_w: F64  # electrical, negative in regen
    motor_temp_c: F64
    inverter_temp_c: F64
    coolant_temp_c: F64
    transmission_temp_c: F64
    motor_time_in_use_s: F64
    soc: F64
    polarisation_v: F64
    pack_temp_c: F64
    fade_calendar: F64
    fade_cycle: F64
    battery_current_a: F64
    battery_voltage_v: F64
    battery_ocv_v: F64
    battery_power_loss_w: F64
    battery_conditioning: B
    cabin_temp_c: F64
    hvac_thermal_w: F64
    hvac_electric_w: F64
    tire_temp_c: F64  # (n, 4)
    brake_temp_c: F64  # (n, 4)
    lv_soc: F64
    lv_voltage_v: F64
    lv_current_a: F64  # positive into the 12 V battery (VSS convention)
    dcdc_loss_w: F64
    dcdc_temp_c: F64
    charging: B
    charge_power_w: F64  # into the vehicle from the grid/charger
    charger_loss_w: F64
    charge_current_a: F64  # at the charger output
    charge_voltage_v: F64
    accel_pedal_pct: F64
    brake_pedal_pct: F64
    friction_brake_w: F64
    # lifetime counters
    discharged_ah: F64
    charged_ah: F64
    discharged_kwh: F64
    charged_kwh: F64
    regen_kwh: F64
    equivalent_full_cycles: F64
    dc_charged_kwh: F64

    @classmethod
    def initial(
        cls,
        n: int,
        ambient_c: F64,
        soc: F64,
        fade_calendar: F64 | None = None,
        fade_cycle: F64 | None = None,
        odometer_m: F64 | None = None,
    ) -> PhysicsState:
        """A fleet parked long enough that every temperature equals ambient."""
        zeros = np.zeros(n)
        amb = np.asarray(ambient_c, dtype=np.float64) * np.ones(n)
        values: dict[str, object] = {}
        for f in fields(cls):
            values[f.name] = zeros.copy()
        values.update(
            soc=np.clip(np.asarray(soc, dtype=np.float64) * np.ones(n), 0.0, 1.0),
            motor_temp_c=amb.copy(),
            inverter_temp_c=amb.copy(),
            coolant_temp_c=amb.copy(),
            transmission_temp_c=amb.copy(),
            pack_temp_c=amb.copy(),
            cabin_temp_c=amb.copy(),
            dcdc_temp_c=amb.copy(),
            tire_temp_c=np.repeat(amb[:, None], 4, axis=1),
            brake_temp_c=np.repeat(amb[:, None], 4, axis=1),
            lv_soc=np.full(n, 0.9),
            lv_voltage_v=np.full(n, 12.6),
            battery_conditioning=np.zeros(n, dtype=bool),
            charging=np.zeros(n, dtype=bool),
            fade_calendar=zeros.copy()
            if fade_calendar is None
            else np.asarray(fade_calendar, float).copy(),
            fade_cycle=zeros.copy() if fade_cycle is None else np.asarray(fade_cycle, float).copy(),
            odometer_m=zeros.copy() if odometer_m is None else np.asarray(odometer_m, float).copy(),
        )
        return cls(**values)  # type: ignore[arg-type]

    def take(self, index: npt.NDArray[np.intp] | slice) -> PhysicsState:
        """The state of a subset of vehicles (copies)."""
        return PhysicsState(**{f.name: getattr(self, f.name)[index].copy() for f in fields(self)})

    @property
    def soh(self) -> F64:
        """State of health: remaining capacity fraction of new."""
        return np.clip(1.0 - self.fade_calendar - self.fade_cycle, 0.0, 1.0)


@dataclass
class EnergyLedger:
    """Energy (J) per vehicle, accumulated since creation, by where it went.

    At the wheels: ``traction_j`` (driving force x distance) = ``inertia_j`` (kinetic energy
    gained, negative when slowing) + ``aero_j`` + ``rolling_j`` + ``grade_j`` + ``brake_drag_j``
    + ``regen_wheel_j`` + ``friction_brake_j`` (the last two are the braking work, ≥ 0).
    On the high-voltage bus: ``battery_out_j`` (terminal, net) + ``charger_out_j`` =
    ``motor_electric_j`` + ``hvac_j`` + ``dcdc_in_j`` + ``conditioning_j``.
    """

    traction_j: F64 = field(default_factory=lambda: np.zeros(0))
    inertia_j: F64 = field(default_factory=lambda: np.zeros(0))
    aero_j: F64 = field(default_factory=lambda: np.zeros(0))
    rolling_j: F64 = field(default_factory=lambda: np.zeros(0))
    grade_j: F64 = field(default_factory=lambda: np.zeros(0))
    brake_drag_j: F64 = field(default_factory=lambda: np.zeros(0))
    regen_wheel_j: F64 = field(default_factory=lambda: np.zeros(0))
    friction_brake_j: F64 = field(default_factory=lambda: np.zeros(0))
    gear_loss_j: F64 = field(default_factory=lambda: np.zeros(0))
    motor_loss_j: F64 = field(default_factory=lambda: np.zeros(0))
    motor_electric_j: F64 = field(default_factory=lambda: np.zeros(0))
    hvac_j: F64 = field(default_factory=lambda: np.zeros(0))
    dcdc_in_j: F64 = field(default_factory=lambda: np.zeros(0))
    conditioning_j: F64 = field(default_factory=lambda: np.zeros(0))
    battery_out_j: F64 = field(default_factory=lambda: np.zeros(0))
    battery_internal_loss_j: F64 = field(default_factory=lambda: np.zeros(0))
    charger_out_j: F64 = field(default_factory=lambda: np.zeros(0))
    grid_j: F64 = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def zeros(cls, n: int) -> EnergyLedger:
        """An empty ledger for ``n`` vehicles."""
        return cls(**{f.name: np.zeros(n) for f in fields(cls)})

    def take(self, index: npt.NDArray[np.intp] | slice) -> EnergyLedger:
        """The ledger of a subset of vehicles (copies)."""
        return EnergyLedger(**{f.name: getattr(self, f.name)[index].copy() for f in fields(self)})
