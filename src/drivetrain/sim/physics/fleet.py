"""``FleetPhysics``: the whole fleet's physics advanced by one vectorised ``step(dt)``.

Each step, for every vehicle at once (no per-vehicle Python):

1. longitudinal dynamics — the driver's target speed becomes an acceleration within the
   driver's limits and the traction the motor and battery can give; road load is
   aerodynamic drag (air density from temperature and altitude), rolling resistance (tyre
   pressure and temperature), grade, and any dragging brake;
2. braking — regeneration first, up to the motor's regen power, the battery's charge
   acceptance and a fade-out below 8 km/h; the friction brakes take the rest;
3. motor/inverter and gear losses; HVAC for the cabin; 12 V loads through the DC/DC converter;
   pack conditioning; a connected charger (AC or DC with the BMS taper and the CV limit);
4. the battery's equivalent circuit gives the current for the net bus power; state of charge,
   polarisation, ageing and temperatures follow.

Forces act at the step's mean speed, so ``F·v̄·dt`` balances the kinetic energy change
exactly; ``EnergyLedger`` books every joule so the conservation tests can check both the wheel
and the bus balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivetrain.sim.physics import battery as bat
from drivetrain.sim.physics.arrays import clip
from drivetrain.sim.physics.parameters import FleetParameters
from drivetrain.sim.physics.state import Condition, Controls, EnergyLedger, PhysicsState
from drivetrain.sim.physics.thermal import air_density, hvac_step, relax
from drivetrain.sim.physics.vehicle_models import VehicleModel

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

GRAVITY = 9.80665
DCDC_EFFICIENCY = 0.93
_COOLANT_HEAT_CAPACITY = 2.0e4  # J/K: ~6 l of glycol mix plus pipes and heat exchangers
_TIRE_HEAT_CAPACITY = 1.2e4  # J/K per tyre
_BRAKE_HEAT_CAPACITY = 5.0e3  # J/K per disc
_CHILLER_COP = 2.5


@dataclass(frozen=True)
class StepOutput:
    """What one step did that component wear needs: per-vehicle arrays."""

    dt_s: float
    distance_m: F64
    friction_wheel_j: F64  # (n, 4) energy each wheel's brake absorbed
    pump_running: B
    active: B


class FleetPhysics:
    """The physical state of a fleet of battery-electric vehicles.

    ``models[i]`` is vehicle ``i``'s model. Start conditions: every temperature at
    ``ambient_c``, state of charge ``soc`` (fraction), capacity fade already accumulated
    (``fade_calendar``, ``fade_cycle``) and odometer (m) — scalars or per-vehicle arrays.
    """

    def __init__(
        self,
        models: Sequence[VehicleModel],
        *,
        ambient_c: float | F64 = 20.0,
        soc: float | F64 = 0.8,
        fade_calendar: F64 | None = None,
        fade_cycle: F64 | None = None,
        odometer_m: F64 | None = None,
    ) -> None:
        self.models: tuple[VehicleModel, ...] = tuple(models)
        self.params = FleetParameters.from_models(self.models)
        n = self.params.n
        ambient = np.asarray(ambient_c, dtype=np.float64) * np.ones(n)
        self.state = PhysicsState.initial(
            n, ambient, np.asarray(soc, dtype=np.float64), fade_calendar, fade_cycle, odometer_m
        )
        self.state.battery_ocv_v = bat.ocv_cell(self.state.soc) * self.params.cells_series
        self.state.battery_voltage_v = self.state.battery_ocv_v.copy()
        self.start_odometer_m = self.state.odometer_m.copy()
        self.ledger = EnergyLedger.zeros(n)
        self.time_s = 0.0
        self._healthy = Condition.healthy(n)
        self._last_loads_w = np.zeros(n)
        #: Rolling-resistance multiplier per vehicle for the tyres fitted: 1 for the model's
        #: standard tyres, ~1.15 for winter tyres (one to two EU tyre-label classes worse).
        self.tire_rolling_factor = np.ones(n)

    @property
    def n(self) -> int:
        """Number of vehicles."""
        return self.params.n

    def start_trip(self, mask: B) -> None:
        """Reset the trip meters of the vehicles in ``mask`` (a new trip begins)."""
        self.state.trip_distance_m[mask] = 0.0
        self.state.trip_time_s[mask] = 0.0

    # --- the step ------------------------------------------------------------------------
    def step(
        self, dt_s: float, controls: Controls, condition: Condition | None = None
    ) -> StepOutput:
        """Advance every vehicle by ``dt_s`` seconds under ``controls``.

        Raises:
            ValueError: ``dt_s`` is not positive.
        """
        if not dt_s > 0:
            raise ValueError(f"dt_s must be > 0 seconds, got {dt_s!r}")
        p, s, c = self.params, self.state, controls
        cond = condition if condition is not None else self._healthy
        dt = float(dt_s)
        amb = c.ambient_c
        active = c.drive_active
        soh = s.soh
        fade = 1.0 - soh

        # --- battery operating point at the start of the step -----------------------------
        emf = bat.ocv_cell(s.soc) * p.cells_series - s.polarisation_v
        rf = bat.resistance_factor(s.pack_temp_c, s.soc, fade)
        r0 = p.r0_ohm * rf
        cold = clip((s.pack_temp_c + 20.0) / 30.0, 0.15, 1.0)  # BMS current derate < 10 °C
        i_dis_lim = clip(np.minimum(p.max_discharge_a * cold, (emf - p.pack_v_min) / r0), 0, None)
        p_batt_max = np.where(s.soc > 0.0, (emf - i_dis_lim * r0) * i_dis_lim, 0.0)
        i_chg_lim = clip(np.minimum(p.max_regen_a * cold, (p.pack_v_max - emf) / r0), 0, None)
        i_chg_lim = i_chg_lim * clip((1.0 - s.soc) / 0.05, 0.0, 1.0)
        p_chg_max = (emf + i_chg_lim * r0) * i_chg_lim

        thermal_derate = clip(1.0 - 0.7 * (s.motor_temp_c - 140.0) / 30.0, 0.3, 1.0)
        thermal_derate = np.minimum(
            thermal_derate, clip(1.0 - 0.7 * (s.inverter_temp_c - 90.0) / 20.0, 0.3, 1.0)
        )

        # --- longitudinal dynamics -------------------------------------------------------
        v0 = s.speed_mps
        target = np.where(active, clip(c.target_speed_mps, 0.0, p.max_speed_mps), 0.0)
        a_req = clip((target - v0) / dt, -c.decel_limit_mps2, c.accel_limit_mps2)
        a_req = np.maximum(a_req, -v0 / dt)  # stop at zero, never reverse
        cos_t = 1.0 / np.sqrt(1.0 + c.grade * c.grade)
        sin_t = c.grade * cos_t
        rho = air_density(amb, c.altitude_m)
        crr_wheel = (
            (p.crr * self.tire_rolling_factor)[:, None]
            * (1.0 + 0.008 * clip(25.0 - s.tire_temp_c, 0.0, 45.0))
            * np.sqrt(1.0 / clip(cond.tire_pressure_ratio, 0.2, None))
        )
        wheel_load_n = p.mass_kg * GRAVITY * cos_t / 4.0
        roll_base = wheel_load_n * crr_wheel.sum(axis=1)
        drag_total = cond.brake_drag_n.sum(axis=1)
        grade_force = p.mass_kg * GRAVITY * sin_t

        vm_est = np.maximum(v0 + 0.5 * a_req * dt, 0.0)
        resist_est = (
            0.5 * rho * p.cda_m2 * vm_est * vm_est
            + np.where(vm_est > 0, roll_base + drag_total, 0.0)
            + grade_force
        )
        need = p.inertial_mass_kg * a_req + resist_est
        p_motor_avail = clip(
            p_batt_max - self._last_loads_w, 0.0, p.motor_max_power_w * thermal_derate
        )
        wheel_torque_lim = (
            p.motor_max_torque_nm * p.gear_ratio * p.gear_efficiency / p.tire_radius_m
        )
        f_trac_max = np.minimum(
            wheel_torque_lim, 0.9 * p_motor_avail * p.gear_efficiency / np.maximum(vm_est, 1.0)
        )
        f_trac_max = np.where(active, f_trac_max, 0.0)
        a = np.where(need > f_trac_max, (f_trac_max - resist_est) / p.inertial_mass_kg, a_req)
        a = np.minimum(a, a_req)
        hold = (v0 <= 0.0) & (a <= 0.0)
        a = np.where(hold, 0.0, a)
        v1 = np.maximum(v0 + a * dt, 0.0)
        a = (v1 - v0) / dt
        vm = 0.5 * (v0 + v1)
        moving = vm > 0.0

        f_aero = 0.5 * rho * p.cda_m2 * vm * vm
        f_roll = np.where(moving, roll_base, 0.0)
        f_drag = np.where(moving, drag_total, 0.0)
        f_grade = np.where(hold, 0.0, grade_force)
        f_inertia = p.inertial_mass_kg * a
        f_wheel = f_inertia + f_aero + f_roll + f_drag + f_grade

        # --- regen and friction brakes -----------------------------------------------------
        braking = f_wheel < 0.0
        regen_fade = clip((vm * 3.6 - 2.0) / 6.0, 0.0, 1.0)
        p_regen_elec = np.minimum(p.motor_max_regen_w, (p_chg_max + self._last_loads_w) / 0.85)
        f_regen_max = np.minimum(
            p.motor_max_torque_nm * p.gear_ratio / (p.tire_radius_m * p.gear_efficiency),
            p_regen_elec / np.maximum(vm, 0.5),
        ) * np.where(active, regen_fade, 0.0)
        f_regen = np.where(braking, np.maximum(f_wheel, -f_regen_max), 0.0)
        f_friction = np.where(braking, f_wheel - f_regen, 0.0)
        f_traction = np.where(braking, 0.0, f_wheel)

        # --- motor, inverter and gear --------------------------------------------------------
        eta = p.gear_efficiency
        omega = vm * p.gear_ratio / p.tire_radius_m
        torque = np.where(
            braking,
            f_regen * p.tire_radius_m * eta / p.gear_ratio,
            f_traction * p.tire_radius_m / (p.gear_ratio * eta),
        )
        gear_loss = np.where(
            braking, -f_regen * vm * (1.0 - eta), f_traction * vm * (1.0 / eta - 1.0)
        )
        motor_loss = np.where(
            active,
            p.motor_constant_loss_w + p.motor_iron_loss * omega + p.motor_copper_loss * torque**2,
            0.0,
        )
        p_motor = torque * omega + motor_loss

        # --- cabin climate -----------------------------------------------------------------
        cabin, hvac_thermal, hvac_elec = hvac_step(
            s.cabin_temp_c,
            amb,
            c.cabin_setpoint_c,
            c.hvac_on,
            p.cabin_ua,
            p.cabin_heat_capacity,
            p.cabin_heater_max_w,
            p.cabin_cooler_max_w,
            p.heat_pump,
            p.blower_w,
            dt,
        )

        # --- charger offer ---------------------------------------------------------------------
        plugged = (c.charger_w > 0.0) & ~active
        dc = c.charger_dc & plugged
        capacity_ah = p.usable_ah * np.maximum(soh, 0.05)

        # --- pack conditioning ------------------------------------------------------------------
        pump_running = active | plugged
        cool_thermal = np.where(
            pump_running & (s.pack_temp_c > 35.0),
            np.minimum(p.pack_cooling_max_w, 500.0 * (s.pack_temp_c - 33.0)),
            0.0,
        )
        heat_thermal = np.where(dc & (s.pack_temp_c < 15.0), p.pack_heater_max_w, 0.0)
        conditioning_elec = cool_thermal / _CHILLER_COP + heat_thermal / 0.98
        conditioning = (cool_thermal > 0.0) | (heat_thermal > 0.0)

        # --- 12 V system through the DC/DC converter -----------------------------------------
        lv_capacity_ah = p.lv_battery_ah * clip(cond.lv_capacity, 0.02, None)
        lv_charge_a = np.where(pump_running, clip(40.0 * (1.0 - s.lv_soc) + 0.2, 0.0, 25.0), 0.0)
        lv_drain_a = np.where(pump_running, 0.0, 0.03 + cond.lv_parasitic_a)
        lv_current = lv_charge_a - lv_drain_a
        lv_soc = clip(s.lv_soc + lv_current * dt / 3600.0 / lv_capacity_ah, 0.0, 1.0)
        lv_voltage = np.where(
            pump_running,
            13.9 + 0.3 * lv_charge_a / 25.0,
            11.6 + 1.1 * lv_soc - 0.03 * lv_drain_a - 0.4 * (1.0 - clip(cond.lv_capacity, 0, 1)),
        )
        dcdc_out = np.where(
            pump_running, np.where(active, p.aux_load_w, 60.0) + lv_charge_a * 14.1, 0.0
        )
        dcdc_in = dcdc_out / DCDC_EFFICIENCY
        dcdc_loss = dcdc_in - dcdc_out

        loads = hvac_elec + dcdc_in + conditioning_elec + p_motor

        # --- charger: BMS current target, CC-CV -------------------------------------------------
        offer_w = np.where(
            dc, np.minimum(c.charger_w, p.dc_max_w), np.minimum(c.charger_w, p.ac_max_w)
        )
        efficiency = np.where(dc, p.dc_efficiency, p.ac_efficiency)
        out_max = np.where(plugged, offer_w * efficiency, 0.0)
        taper = clip((1.0 - s.soc) / (1.0 - p.dc_taper_start), 0.0, 1.0)
        c_peak = p.dc_max_w / (p.cells_series * 3.7 * capacity_ah)
        c_dc = p.dc_end_c + (c_peak - p.dc_end_c) * taper
        c_dc = np.where(
            s.pack_temp_c < 10.0,
            np.minimum(c_dc, p.dc_cold_c * clip((s.pack_temp_c + 10.0) / 20.0, 0.2, 1.0)),
            c_dc,
        )
        c_limit = np.where(dc, c_dc, 1.0)
        i_cv = clip((p.pack_v_max - emf) / r0, 0.0, None)
        wants = plugged & (s.soc < c.charge_limit)
        i_target = np.where(wants, np.minimum(c_limit * capacity_ah, i_cv), 0.0)
        charger_out = np.where(
            plugged, np.minimum(out_max, i_target * (emf + i_target * r0) + loads), 0.0
        )
        grid = np.where(plugged, charger_out / efficiency, 0.0)
        charging = plugged & (i_target > 0.5)

        # --- battery ---------------------------------------------------------------------------
        p_batt = loads - charger_out
        current, delivered = bat.current_for_power(p_batt, emf, r0)
        voltage = emf - current * r0
        r1 = p.r1_ohm * rf
        decay = np.exp(-dt / p.tau1_s)
        internal_loss = current * current * r0 + s.polarisation_v * current
        polarisation = s.polarisation_v * decay + current * r1 * (1.0 - decay)
        soc = clip(s.soc - current * dt / 3600.0 / capacity_ah, 0.0, 1.0)
        fade_cal = s.fade_calendar + bat.calendar_fade_increment(
            s.fade_calendar, s.pack_temp_c, s.soc, dt
        )
        fade_cyc = s.fade_cycle + bat.cycle_fade_increment(current, capacity_ah, s.pack_temp_c, dt)

        # --- temperatures ------------------------------------------------------------------------
        flow = np.where(pump_running, clip(cond.coolant_flow, 0.0, 1.0), 0.0)
        pack_heat = np.maximum(internal_loss, 0.0) + heat_thermal - cool_thermal
        ua_pack = p.pack_ua_parked + flow * (p.pack_ua_active - p.pack_ua_parked)
        pack_temp = relax(
            s.pack_temp_c, amb + pack_heat / ua_pack, ua_pack, p.pack_heat_capacity, dt
        )

        ua_mc = p.motor_ua_coolant * flow + 4.0
        motor_heat = 0.65 * motor_loss
        motor_temp = relax(
            s.motor_temp_c, s.coolant_temp_c + motor_heat / ua_mc, ua_mc, p.motor_heat_capacity, dt
        )
        coolant_heat = ua_mc * (motor_temp - s.coolant_temp_c) + 0.35 * motor_loss + dcdc_loss
        ua_radiator = 10.0 + flow * (120.0 + 6.0 * vm)
        coolant_temp = relax(
            s.coolant_temp_c,
            amb + coolant_heat / ua_radiator,
            ua_radiator,
            _COOLANT_HEAT_CAPACITY,
            dt,
        )
        inverter_temp = coolant_temp + 0.35 * motor_loss * 0.012 / (0.2 + 0.8 * flow)
        transmission_temp = relax(
            s.transmission_temp_c,
            amb + gear_loss * 0.04 + 0.3 * (motor_temp - amb),
            np.full(self.n, 15.0),
            np.full(self.n, 3.0e4),
            dt,
        )

        roll_wheel_w = np.where(moving, wheel_load_n, 0.0)[:, None] * crr_wheel * vm[:, None]
        h_tire = (8.0 + 1.2 * vm)[:, None]
        tire_temp = relax(
            s.tire_temp_c, amb[:, None] + roll_wheel_w / h_tire, h_tire, _TIRE_HEAT_CAPACITY, dt
        )

        front = p.front_brake_share[:, None] * np.array([[0.5, 0.5, 0.0, 0.0]])
        rear = (1.0 - p.front_brake_share)[:, None] * np.array([[0.0, 0.0, 0.5, 0.5]])
        friction_w = (-f_friction * vm)[:, None] * (front + rear) + cond.brake_drag_n * vm[
            :, None
        ] * moving[:, None]
        h_brake = (10.0 + 1.5 * vm)[:, None]
        brake_temp = relax(
            s.brake_temp_c, amb[:, None] + friction_w / h_brake, h_brake, _BRAKE_HEAT_CAPACITY, dt
        )

        # --- commit state ----------------------------------------------------------------------
        s.speed_mps = v1
        s.accel_mps2 = a
        s.odometer_m = s.odometer_m + vm * dt
        s.trip_distance_m = s.trip_distance_m + vm * dt
        s.trip_time_s = s.trip_time_s + np.where(active, dt, 0.0)
        s.motor_torque_nm = torque
        s.motor_speed_rad_s = omega
        s.motor_power_w = p_motor
        s.motor_temp_c = motor_temp
        s.inverter_temp_c = inverter_temp
        s.coolant_temp_c = coolant_temp
        s.transmission_temp_c = transmission_temp
        s.motor_time_in_use_s = s.motor_time_in_use_s + np.where(moving, dt, 0.0)
        s.soc = soc
        s.polarisation_v = polarisation
        s.pack_temp_c = pack_temp
        s.fade_calendar = fade_cal
        s.fade_cycle = fade_cyc
        s.battery_current_a = current
        s.battery_voltage_v = voltage
        s.battery_ocv_v = bat.ocv_cell(soc) * p.cells_series
        s.battery_power_loss_w = internal_loss
        s.battery_conditioning = conditioning
        s.cabin_temp_c = cabin
        s.hvac_thermal_w = hvac_thermal
        s.hvac_electric_w = hvac_elec
        s.tire_temp_c = tire_temp
        s.brake_temp_c = brake_temp
        s.lv_soc = lv_soc
        s.lv_voltage_v = lv_voltage
        s.lv_current_a = lv_current
        s.dcdc_loss_w = dcdc_loss
        s.dcdc_temp_c = coolant_temp + dcdc_loss * 0.02
        s.charging = charging
        s.charge_power_w = grid
        s.charger_loss_w = grid - charger_out
        charge_v = np.where(plugged, emf + np.maximum(-current, 0.0) * r0, 0.0)
        s.charge_voltage_v = np.where(charging, np.where(dc, voltage, 230.0), 0.0)
        s.charge_current_a = np.where(
            charging, np.where(dc, charger_out / np.maximum(charge_v, 1.0), grid / 230.0 / 3.0), 0.0
        )
        s.accel_pedal_pct = np.where(
            f_traction > 0, 100.0 * clip(f_traction / np.maximum(wheel_torque_lim, 1.0), 0, 1), 0.0
        )
        s.brake_pedal_pct = np.where(
            braking, clip(100.0 * -f_wheel / (p.mass_kg * GRAVITY * 0.9), 0.0, 100.0), 0.0
        )
        s.friction_brake_w = friction_w.sum(axis=1)
        out_j = np.maximum(current, 0.0) * voltage * dt
        in_j = np.maximum(-current, 0.0) * voltage * dt
        s.discharged_ah = s.discharged_ah + np.maximum(current, 0.0) * dt / 3600.0
        s.charged_ah = s.charged_ah + np.maximum(-current, 0.0) * dt / 3600.0
        s.discharged_kwh = s.discharged_kwh + out_j / 3.6e6
        s.charged_kwh = s.charged_kwh + in_j / 3.6e6
        s.regen_kwh = s.regen_kwh + np.maximum(-p_motor, 0.0) * dt / 3.6e6
        s.equivalent_full_cycles = s.discharged_ah / p.usable_ah
        s.dc_charged_kwh = s.dc_charged_kwh + np.where(dc, in_j, 0.0) / 3.6e6
        self._last_loads_w = hvac_elec + dcdc_in + conditioning_elec

        # --- ledger ------------------------------------------------------------------------------
        L = self.ledger
        L.traction_j += f_traction * vm * dt
        L.inertia_j += f_inertia * vm * dt
        L.aero_j += f_aero * vm * dt
        L.rolling_j += f_roll * vm * dt
        L.grade_j += f_grade * vm * dt
        L.brake_drag_j += f_drag * vm * dt
        L.regen_wheel_j += -f_regen * vm * dt
        L.friction_brake_j += -f_friction * vm * dt
        L.gear_loss_j += gear_loss * dt
        L.motor_loss_j += motor_loss * dt
        L.motor_electric_j += p_motor * dt
        L.hvac_j += hvac_elec * dt
        L.dcdc_in_j += dcdc_in * dt
        L.conditioning_j += conditioning_elec * dt
        L.battery_out_j += delivered * dt
        L.battery_internal_loss_j += internal_loss * dt
        L.charger_out_j += charger_out * dt
        L.grid_j += grid * dt

        self.time_s += dt
        return StepOutput(
            dt_s=dt,
            distance_m=vm * dt,
            friction_wheel_j=friction_w * dt,
            pump_running=pump_running,
            active=active,
        )
