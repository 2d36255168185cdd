"""Drive speed traces (standard cycles or recorded trips) through the fleet physics.

One call runs many vehicles side by side — one per (model, conditions) pair — in a single
vectorised fleet, so a whole table of models x cycles x temperatures costs one pass per
second of the longest trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivetrain.sim.physics.cycles import DriveCycle
from drivetrain.sim.physics.fleet import FleetPhysics
from drivetrain.sim.physics.state import Controls, EnergyLedger
from drivetrain.sim.physics.vehicle_models import VehicleModel

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TraceRun:
    """One vehicle driving one speed trace under fixed conditions.

    ``speed_mps`` is sampled every ``dt_s`` from time 0. ``ambient_c`` is a scalar or one value
    per sample; ``grade`` likewise (rise over run). HVAC holds ``cabin_setpoint_c`` when
    ``hvac``; the pack and cabin start at ``start_pack_c``/ambient (a cold-soaked car) unless
    given.
    """

    model: VehicleModel
    speed_mps: F64
    dt_s: float = 1.0
    ambient_c: float | F64 = 23.0
    grade: float | F64 = 0.0
    hvac: bool = True
    cabin_setpoint_c: float = 21.0
    start_soc: float = 0.9
    start_pack_c: float | None = None
    soh: float = 1.0
    tire_rolling_factor: float = 1.0
    label: str = ""


@dataclass(frozen=True)
class TraceResult:
    """What a ``TraceRun`` used. Energies in kWh at the battery terminals (net of regen)."""

    label: str
    model_name: str
    distance_km: float
    target_distance_km: float
    battery_kwh: float
    hvac_kwh: float
    regen_kwh: float
    friction_brake_kwh: float
    soc_start: float
    soc_end: float
    max_speed_error_kmh: float
    ledger: EnergyLedger

    @property
    def wh_per_km(self) -> float:
        """Net battery energy per distance driven, Wh/km."""
        return (
            1000.0 * self.battery_kwh / self.distance_km if self.distance_km > 0 else float("nan")
        )


def _per_sample(value: float | F64, length: int) -> F64:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return np.full(length, float(array))
    if array.shape != (length,):
        raise ValueError(f"per-sample value has shape {array.shape}; expected ({length},)")
    return array


def drive_traces(runs: Sequence[TraceRun]) -> list[TraceResult]:
    """Drive every run at once (one vehicle each) and report each one's energy use.

    Runs may differ in length; a finished run holds still with everything off. All runs must
    share one ``dt_s``.

    Raises:
        ValueError: ``runs`` is empty, the runs' ``dt_s`` differ, or a per-sample array has the
            wrong length.
    """
    if not runs:
        raise ValueError("drive_traces needs at least one run")
    dt = runs[0].dt_s
    if any(r.dt_s != dt for r in runs):
        raise ValueError(f"every run must share dt_s; got {sorted({r.dt_s for r in runs})}")
    n = len(runs)
    length = max(len(r.speed_mps) for r in runs)
    speed = np.zeros((length, n))
    ambient = np.zeros((length, n))
    grade = np.zeros((length, n))
    for i, r in enumerate(runs):
        k = len(r.speed_mps)
        speed[:k, i] = r.speed_mps
        ambient[:, i] = np.concatenate(
            [_per_sample(r.ambient_c, k), np.full(length - k, _per_sample(r.ambient_c, k)[-1])]
        )
        grade[:k, i] = _per_sample(r.grade, k)
    lengths = np.array([len(r.speed_mps) for r in runs])
    fleet = FleetPhysics(
        [r.model for r in runs],
        ambient_c=ambient[0],
        soc=np.array([r.start_soc for r in runs]),
        fade_calendar=np.array([1.0 - r.soh for r in runs]),
    )
    start_pack = np.array([r.start_pack_c if r.start_pack_c is not None else np.nan for r in runs])
    fleet.state.pack_temp_c = np.where(np.isnan(start_pack), fleet.state.pack_temp_c, start_pack)
    fleet.tire_rolling_factor = np.array([r.tire_rolling_factor for r in runs])
    controls = Controls.idle(n)
    controls.accel_limit_mps2[:] = 6.0
    controls.decel_limit_mps2[:] = 8.0
    controls.cabin_setpoint_c[:] = [r.cabin_setpoint_c for r in runs]
    hvac = np.array([r.hvac for r in runs])
    soc_start = fleet.state.soc.copy()
    worst_error = np.zeros(n)
    hvac_j = np.zeros(n)
    for k in range(1, length):
        running = k < lengths
        controls.target_speed_mps = speed[k]
        controls.ambient_c = ambient[k]
        controls.grade = grade[k]
        controls.drive_active = running
        controls.hvac_on = hvac & running
        fleet.step(dt, controls)
        hvac_j += fleet.state.hvac_electric_w * dt
        worst_error = np.maximum(
            worst_error, np.where(running, np.abs(fleet.state.speed_mps - speed[k]), 0.0)
        )
    ledger = fleet.ledger
    results = []
    for i, r in enumerate(runs):
        trace = r.speed_mps
        target_km = float(np.sum((trace[1:] + trace[:-1]) / 2.0) * dt / 1000.0)
        results.append(
            TraceResult(
                label=r.label,
                model_name=r.model.name,
                distance_km=float(fleet.state.odometer_m[i] / 1000.0),
                target_distance_km=target_km,
                battery_kwh=float(ledger.battery_out_j[i] / 3.6e6),
                hvac_kwh=float(hvac_j[i] / 3.6e6),
                regen_kwh=float(ledger.regen_wheel_j[i] / 3.6e6),
                friction_brake_kwh=float(ledger.friction_brake_j[i] / 3.6e6),
                soc_start=float(soc_start[i]),
                soc_end=float(fleet.state.soc[i]),
                max_speed_error_kmh=float(worst_error[i] * 3.6),
                ledger=ledger.take(np.array([i])),
            )
        )
    return results


def drive_cycle(
    model: VehicleModel, cycle: DriveCycle, *, ambient_c: float = 23.0, hvac: bool = True
) -> TraceResult:
    """One model on one standard cycle (convenience wrapper of ``drive_traces``)."""
    return drive_traces(
        [TraceRun(model, cycle.speed_mps, ambient_c=ambient_c, hvac=hvac, label=cycle.name)]
    )[0]
