"""``FleetWear``: five components degrading toward failure, with exact remaining useful life.

| component | health | failure when | RUL unit |
|---|---|---|---|
| brake pads (per wheel) | pad thickness, mm; wears per MJ the friction brake absorbs | < 2.0 mm | MJ of friction braking (exact); km at the vehicle's mean friction energy per km (estimate) |
| tyres (per tyre) | cold pressure / placard; permeation, plus a slow puncture | < 0.75 (FMVSS 138 warning level) | s |
| 12 V battery | capacity fraction; calendar fade, plus sulfation | < 0.55 | s |
| coolant pump | health 0..1 vs pump operating time; bearing wear grows exponentially | < 0.25 | s of pump operation |
| traction cell | weakest cell's SoC deficit; a micro-short drains it | rest-voltage spread at 50 % SoC > 60 mV | s |

Time- and usage-driven health follows closed forms of the fault plan, so the RUL at any
moment is the exact distance to the threshold crossing (including faults that start later).
Pads integrate the friction energy the physics reports; their RUL in MJ is exact because wear
is proportional to that energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivetrain.sim.physics.arrays import clip
from drivetrain.sim.physics.battery import soc_for_ocv_drop
from drivetrain.sim.physics.fleet import StepOutput
from drivetrain.sim.physics.state import Condition
from drivetrain.sim.wear.faults import COMPONENTS, DAY_S, HOUR_S, Component, FaultPlan, WearConfig

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

PAD_NEW_MM = np.array([11.0, 11.0, 10.0, 10.0])
PAD_MIN_MM = 2.0
PAD_WARN_MM = 3.0
#: Pad wear per MJ absorbed by that wheel's brake: 9 mm over ~5,000 MJ, i.e. ~60,000 km of a
#: combustion car's braking (0.25 MJ/km, 70 % on the front axle).
PAD_WEAR_MM_PER_MJ = 9.0 / 5000.0
TIRE_FAIL_RATIO = 0.75
TIRE_PERMEATION_TAU_S = 40 * 30 * DAY_S  # ~2 %/month natural loss
LV_FAIL_CAPACITY = 0.55
LV_CALENDAR_FADE_PER_S = 0.06 / (365 * DAY_S)
PUMP_FAIL_HEALTH = 0.25
PUMP_NOMINAL_LIFE_OP_S = 20000 * HOUR_S
_PUMP_A = 0.02  # scale of the exponential wear-out term
CELL_FAIL_SPREAD_V = 0.060
CELL_FAIL_DEFICIT = soc_for_ocv_drop(0.5, CELL_FAIL_SPREAD_V)


@dataclass(frozen=True)
class FailureEvent:
    """A component crossing its failure threshold (or a fault starting)."""

    vehicle: int
    component: Component
    kind: str  # "fault_onset" or "failure"
    time_s: float
    odometer_m: float


class FleetWear:
    """Wear state of ``n`` vehicles; ``step`` after each physics step.

    ``pad_mm``, ``age_s`` and friends are initial conditions: a fleet of used cars starts with
    worn pads and aged 12 V batteries. ``cells_series`` numbers each vehicle's cells (for the
    weak cell's id).
    """

    def __init__(
        self,
        n: int,
        rng: np.random.Generator,
        config: WearConfig | None = None,
        *,
        cells_series: npt.ArrayLike = 100,
        vehicle_age_s: npt.ArrayLike = 0.0,
    ) -> None:
        self.config = config or WearConfig()
        self.n = n
        accel = self.config.acceleration
        cells = np.broadcast_to(np.asarray(cells_series, dtype=np.int64), (n,)).copy()
        age = np.broadcast_to(np.asarray(vehicle_age_s, dtype=np.float64), (n,)).copy()
        self.plan = FaultPlan.draw(rng, n, self.config, cells)
        self.cells_series = cells
        self.time_s = 0.0
        # brake pads: part-worn according to age; per-wheel wear rate spread ±10 %
        used = clip(age / (6 * 365 * DAY_S), 0.0, 0.6)
        self.pad_mm = PAD_NEW_MM[None, :] - (PAD_NEW_MM - PAD_MIN_MM)[None, :] * used[
            :, None
        ] * rng.uniform(0.7, 1.0, (n, 4))
        self.pad_wear_mm_per_mj = PAD_WEAR_MM_PER_MJ * accel * rng.uniform(0.9, 1.1, (n, 4))
        self.friction_mj = np.zeros(n)
        self.friction_km = np.zeros(n)  # distance over which friction_mj accrued
        # tyres: pressure ratio at the reference time; permeation per tyre
        self.tire_ref_ratio = rng.uniform(0.93, 1.05, (n, 4))
        self.tire_ref_s = np.zeros((n, 4))
        self.tire_tau_s = TIRE_PERMEATION_TAU_S / accel * rng.uniform(0.8, 1.2, (n, 4))
        self.leak_onset_s = np.full((n, 4), np.inf)
        self.leak_onset_s[np.arange(n), self.plan.leak_tire] = self.plan.leak_onset_s
        self.leak_tau_s = np.full((n, 4), np.inf)
        self.leak_tau_s[np.arange(n), self.plan.leak_tire] = self.plan.leak_tau_s
        # 12 V battery: capacity at the reference time, linear calendar fade
        self.lv_ref_capacity = clip(
            1.0 - LV_CALENDAR_FADE_PER_S * age * rng.uniform(0.7, 1.3, n), 0.6, 1.0
        )
        self.lv_ref_s = np.zeros(n)
        self.lv_fade_per_s = LV_CALENDAR_FADE_PER_S * accel * rng.uniform(0.7, 1.3, n)
        # coolant pump: operating seconds
        self.pump_op_s = np.zeros(n)
        self.pump_ref_op_s = np.zeros(n)
        self.pump_ref_health = np.ones(n)
        # weak cell: balanced deficit when healthy
        self.cell_ref_deficit = rng.uniform(0.0, 0.008, n)
        self.cell_ref_s = np.zeros(n)
        self.failed = {c: np.zeros(n, dtype=bool) for c in COMPONENTS}
        self.fault_started = {c: np.zeros(n, dtype=bool) for c in COMPONENTS}
        self.events: list[FailureEvent] = []
        self._placard = np.ones(n)

    # --- closed-form health ---------------------------------------------------------------
    def tire_ratio(self, t_s: float | None = None) -> F64:
        """Cold (20 °C) tyre pressure over placard at ``t_s`` (default: now), shape (n, 4)."""
        t = self.time_s if t_s is None else t_s
        on = np.maximum(self.leak_onset_s, self.tire_ref_s)
        before = np.minimum(t, on) - self.tire_ref_s
        after = np.maximum(t - on, 0.0)
        ratio: F64 = self.tire_ref_ratio * np.exp(
            -before / self.tire_tau_s - after * (1.0 / self.tire_tau_s + 1.0 / self.leak_tau_s)
        )
        return ratio

    def lv_capacity(self, t_s: float | None = None) -> F64:
        """12 V battery capacity fraction at ``t_s`` (default: now)."""
        t = self.time_s if t_s is None else t_s
        on = np.maximum(self.plan.lv_onset_s, self.lv_ref_s)
        return (
            self.lv_ref_capacity
            - self.lv_fade_per_s * (t - self.lv_ref_s)
            - self.plan.lv_fade_per_s * np.maximum(t - on, 0.0)
        )

    def pump_health(self) -> F64:
        """Coolant pump health (0..1) at the current operating time."""
        u = self.pump_op_s
        on = np.maximum(self.plan.pump_onset_op_s, self.pump_ref_op_s)
        linear = (
            self.pump_ref_health - (np.minimum(u, on) - self.pump_ref_op_s) / PUMP_NOMINAL_LIFE_OP_S
        )
        h_on = self.pump_ref_health - (on - self.pump_ref_op_s) / PUMP_NOMINAL_LIFE_OP_S
        rate = self._pump_rate(h_on)
        wear_out = _PUMP_A * np.expm1(rate * np.maximum(u - on, 0.0))
        return np.where(u > on, h_on - wear_out, linear)

    def _pump_rate(self, h_on: F64) -> F64:
        # Exponential rate such that health reaches the failure level pump_life after onset.
        return (
            np.log1p(np.maximum(h_on - PUMP_FAIL_HEALTH, 1e-9) / _PUMP_A) / self.plan.pump_life_op_s
        )

    def cell_deficit(self, t_s: float | None = None) -> F64:
        """SoC shortfall (fraction) of each vehicle's weakest cell at ``t_s`` (default: now)."""
        t = self.time_s if t_s is None else t_s
        on = np.maximum(self.plan.cell_onset_s, self.cell_ref_s)
        return self.cell_ref_deficit + self.plan.cell_drift_per_s * np.maximum(t - on, 0.0)

    # --- remaining useful life ------------------------------------------------------------
    def rul(self) -> dict[str, F64]:
        """Ground-truth remaining useful life per vehicle, keyed ``<component>_rul_<unit>``.

        Brake pads: per pad, the friction energy (MJ) that pad can still absorb — exact, since
        wear is proportional to it — and ``brake_pads_rul_mj``, the least of the four;
        ``brake_pads_rul_km_est`` converts that at the vehicle's mean friction energy per km so
        far (a forecast, not ground truth). ``inf`` where no failure will happen (a balanced
        cell never drifts); 0 once failed.
        """
        t = self.time_s
        # tyres: solve ratio(t_f) = threshold on the piecewise exponential
        ratio_now = self.tire_ratio()
        on = np.maximum(self.leak_onset_s, self.tire_ref_s)
        k_h = 1.0 / self.tire_tau_s
        k_f = k_h + 1.0 / self.leak_tau_s
        log_margin = np.log(np.maximum(ratio_now, 1e-12) / TIRE_FAIL_RATIO)
        finite_on = np.isfinite(on)
        ratio_on = np.where(finite_on, self.tire_ratio_at(np.where(finite_on, on, t)), 0.0)
        fails_first = ~finite_on | (ratio_on <= TIRE_FAIL_RATIO)
        later = np.log(np.maximum(ratio_on, 1e-12) / TIRE_FAIL_RATIO) / k_f
        tire_rul = np.where(
            t >= on,
            log_margin / k_f,
            np.where(fails_first, log_margin / k_h, np.where(finite_on, on - t, 0.0) + later),
        )
        tire_rul = np.maximum(tire_rul, 0.0).min(axis=1)

        # 12 V: piecewise linear
        cap = self.lv_capacity()
        lv_on = np.maximum(self.plan.lv_onset_s, self.lv_ref_s)
        lv_finite = np.isfinite(lv_on)
        cap_on = np.where(lv_finite, self.lv_capacity_at(np.where(lv_finite, lv_on, t)), 0.0)
        slow, fast = self.lv_fade_per_s, self.lv_fade_per_s + self.plan.lv_fade_per_s
        lv_rul = np.where(
            t >= lv_on,
            (cap - LV_FAIL_CAPACITY) / fast,
            np.where(
                ~lv_finite | (cap_on <= LV_FAIL_CAPACITY),
                (cap - LV_FAIL_CAPACITY) / slow,
                np.where(lv_finite, lv_on - t, 0.0) + (cap_on - LV_FAIL_CAPACITY) / fast,
            ),
        )

        # coolant pump, in operating seconds
        u = self.pump_op_s
        p_on = np.maximum(self.plan.pump_onset_op_s, self.pump_ref_op_s)
        h_on = self.pump_ref_health - (p_on - self.pump_ref_op_s) / PUMP_NOMINAL_LIFE_OP_S
        u_fail_fault = p_on + np.log1p(
            np.maximum(h_on - PUMP_FAIL_HEALTH, 0.0) / _PUMP_A
        ) / self._pump_rate(h_on)
        u_fail_linear = (
            self.pump_ref_op_s + (self.pump_ref_health - PUMP_FAIL_HEALTH) * PUMP_NOMINAL_LIFE_OP_S
        )
        u_fail = np.where(u_fail_linear < p_on, u_fail_linear, u_fail_fault)
        pump_rul = u_fail - u

        # weak cell
        d = self.cell_deficit()
        c_on = np.maximum(self.plan.cell_onset_s, self.cell_ref_s)
        drift = self.plan.cell_drift_per_s
        with np.errstate(divide="ignore", invalid="ignore"):
            cell_rul = np.where(
                t < c_on,
                (c_on - t) + (CELL_FAIL_DEFICIT - self.cell_ref_deficit) / drift,
                (CELL_FAIL_DEFICIT - d) / drift,
            )
        cell_rul = np.where(np.isfinite(c_on), cell_rul, np.inf)

        per_pad_mj = (self.pad_mm - PAD_MIN_MM) / self.pad_wear_mm_per_mj
        pads_mj = per_pad_mj.min(axis=1)
        per_km = np.where(
            self.friction_km > 1.0, self.friction_mj / np.maximum(self.friction_km, 1.0), np.nan
        )
        known = np.isfinite(per_km) & (per_km > 0)
        pads_km = np.where(known, pads_mj / np.where(known, per_km, 1.0), np.inf)
        out = {
            "brake_pad_fl_rul_mj": per_pad_mj[:, 0],
            "brake_pad_fr_rul_mj": per_pad_mj[:, 1],
            "brake_pad_rl_rul_mj": per_pad_mj[:, 2],
            "brake_pad_rr_rul_mj": per_pad_mj[:, 3],
            "brake_pads_rul_mj": pads_mj,
            "brake_pads_rul_km_est": pads_km,
            "tires_rul_s": tire_rul,
            "lv_battery_rul_s": lv_rul,
            "coolant_pump_rul_op_s": pump_rul,
            "hv_cell_rul_s": cell_rul,
        }
        for key, value in list(out.items()):
            component = "brake_pads" if key.startswith("brake_pad") else key.split("_rul_")[0]
            out[key] = np.where(self.failed[component], 0.0, np.maximum(value, 0.0))  # type: ignore[index]
        return out

    def tire_ratio_at(self, t_s: F64) -> F64:
        """Cold pressure ratio each tyre has at per-tyre times ``t_s`` (n, 4)."""
        on = np.maximum(self.leak_onset_s, self.tire_ref_s)
        t = np.where(np.isfinite(t_s), t_s, self.tire_ref_s)
        before = np.minimum(t, on) - self.tire_ref_s
        after = np.maximum(t - on, 0.0)
        ratio: F64 = self.tire_ref_ratio * np.exp(
            -before / self.tire_tau_s - after * (1.0 / self.tire_tau_s + 1.0 / self.leak_tau_s)
        )
        return ratio

    def lv_capacity_at(self, t_s: F64) -> F64:
        """12 V capacity at per-vehicle times ``t_s``."""
        t = np.where(np.isfinite(t_s), t_s, self.lv_ref_s)
        on = np.maximum(self.plan.lv_onset_s, self.lv_ref_s)
        capacity: F64 = (
            self.lv_ref_capacity
            - self.lv_fade_per_s * (t - self.lv_ref_s)
            - self.plan.lv_fade_per_s * np.maximum(t - on, 0.0)
        )
        return capacity

    # --- the step -------------------------------------------------------------------------
    def condition(self) -> Condition:
        """What the current wear imposes on the physics."""
        drag = np.zeros((self.n, 4))
        dragging = self.time_s >= self.plan.caliper_onset_s
        drag[np.arange(self.n), self.plan.caliper_wheel] = np.where(
            dragging, self.plan.caliper_drag_n, 0.0
        )
        return Condition(
            tire_pressure_ratio=self.tire_ratio(),
            brake_drag_n=drag,
            coolant_flow=clip(self.pump_health(), 0.05, 1.0),
            lv_capacity=clip(self.lv_capacity(), 0.02, 1.0),
            lv_parasitic_a=np.zeros(self.n),
            weak_cell_deficit=self.cell_deficit(),
        )

    def step(self, out: StepOutput, odometer_m: F64) -> list[FailureEvent]:
        """Advance wear by one physics step; returns the fault onsets and failures it saw."""
        t0, t1 = self.time_s, self.time_s + out.dt_s
        self.time_s = t1
        absorbed_mj = out.friction_wheel_j / 1e6
        self.pad_mm = np.maximum(self.pad_mm - absorbed_mj * self.pad_wear_mm_per_mj, 0.0)
        self.friction_mj += absorbed_mj.sum(axis=1)
        self.friction_km += out.distance_m / 1000.0
        self.pump_op_s = self.pump_op_s + np.where(out.pump_running, out.dt_s, 0.0)

        health_failed: dict[Component, B] = {
            "brake_pads": np.asarray((self.pad_mm < PAD_MIN_MM).any(axis=1)),
            "tires": np.asarray((self.tire_ratio() < TIRE_FAIL_RATIO).any(axis=1)),
            "lv_battery": self.lv_capacity() < LV_FAIL_CAPACITY,
            "coolant_pump": self.pump_health() < PUMP_FAIL_HEALTH,
            "hv_cell": self.cell_deficit() >= CELL_FAIL_DEFICIT,
        }
        onsets: dict[Component, B] = {
            "brake_pads": (self.plan.caliper_onset_s > t0) & (self.plan.caliper_onset_s <= t1),
            "tires": (self.plan.leak_onset_s > t0) & (self.plan.leak_onset_s <= t1),
            "lv_battery": (self.plan.lv_onset_s > t0) & (self.plan.lv_onset_s <= t1),
            "coolant_pump": (self.plan.pump_onset_op_s <= self.pump_op_s)
            & ~self.fault_started["coolant_pump"],
            "hv_cell": (self.plan.cell_onset_s > t0) & (self.plan.cell_onset_s <= t1),
        }
        events: list[FailureEvent] = []
        for component in COMPONENTS:
            started = onsets[component] & ~self.fault_started[component]
            if started.any():
                self.fault_started[component] |= started
                events.extend(
                    FailureEvent(int(i), component, "fault_onset", t1, float(odometer_m[i]))
                    for i in np.flatnonzero(started)
                )
            new = health_failed[component] & ~self.failed[component]
            if new.any():
                self.failed[component] |= new
                events.extend(
                    FailureEvent(int(i), component, "failure", t1, float(odometer_m[i]))
                    for i in np.flatnonzero(new)
                )
        self.events.extend(events)
        return events

    # --- service --------------------------------------------------------------------------
    def repair(self, vehicles: npt.ArrayLike, component: Component) -> None:
        """Replace/repair ``component`` on ``vehicles`` now: health back to new, the fault
        (if any) removed."""
        idx = np.atleast_1d(np.asarray(vehicles, dtype=np.intp))
        t = self.time_s
        if component == "brake_pads":
            self.pad_mm[idx] = PAD_NEW_MM
            self.plan.caliper_onset_s[idx] = np.inf
        elif component == "tires":
            self.tire_ref_ratio[idx] = 1.0
            self.tire_ref_s[idx] = t
            self.leak_onset_s[idx] = np.inf
            self.leak_tau_s[idx] = np.inf
        elif component == "lv_battery":
            self.lv_ref_capacity[idx] = 1.0
            self.lv_ref_s[idx] = t
            self.plan.lv_onset_s[idx] = np.inf
        elif component == "coolant_pump":
            self.pump_ref_op_s[idx] = self.pump_op_s[idx]
            self.pump_ref_health[idx] = 1.0
            self.plan.pump_onset_op_s[idx] = np.inf
        elif component == "hv_cell":
            self.cell_ref_deficit[idx] = 0.0
            self.cell_ref_s[idx] = t
            self.plan.cell_onset_s[idx] = np.inf
        else:
            raise ValueError(f"unknown component {component!r}; expected one of {COMPONENTS}")
        self.failed[component][idx] = False
        self.fault_started[component][idx] = False
