"""Training data for the maintenance models from a simulated fleet with its ground truth.

``simulate_history`` runs a ``VirtualFleet`` (physics + wear + faults, seeded) and returns what
the lake would hold for it — a long ``vehicle, path, ts, value`` table of the health-related
VSS signals, one sample per vehicle every ``sample_every_s`` — together with the run's
``component_events`` ground truth. The same models train on ``Lake.signals(...)`` output of a
fleet that really reported, joined with the ground-truth Parquet the fleet runner writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from drivetrain.cloud.insights.maintenance import HEALTH_PATHS


@dataclass(frozen=True)
class SimulatedHistory:
    """Lake-shaped telemetry and the ground-truth events of one simulated run."""

    signals: pa.Table  # vehicle, path, ts (seconds), value
    events: pa.Table  # vin, component, kind, time_s, odometer_m
    vins: tuple[str, ...]


def simulate_history(
    vehicles: int,
    *,
    seed: int,
    steps: int,
    dt_s: float = 5.0,
    sample_every_steps: int = 30,
    acceleration: float = 300.0,
    fault_probability: float = 0.5,
) -> SimulatedHistory:
    """Run a seeded virtual fleet and sample its health signals (see module doc)."""
    from drivetrain.sim.wear import COMPONENTS as SIM_COMPONENTS
    from drivetrain.sim.wear.faults import WearConfig
    from drivetrain.sim.world.fleet import FleetConfig, VirtualFleet

    # Fault onsets fall inside the run (the first 70 % of it), so the held-out fleet has failures.
    wear = WearConfig(
        acceleration=acceleration,
        horizon_s=0.7 * steps * dt_s,
        fault_probability={c: fault_probability for c in SIM_COMPONENTS},
    )
    world = VirtualFleet(FleetConfig(vehicles=vehicles, seed=seed, wear=wear))
    vins = tuple(world.vins)
    columns: dict[str, list[np.ndarray]] = {"vehicle": [], "path": [], "ts": [], "value": []}
    vin_array = np.array(vins)
    for step in range(steps):
        world.step(dt_s)
        if step % sample_every_steps:
            continue
        values = world.vss_values()
        now = float(world.time_utc)
        for path in HEALTH_PATHS:
            if path not in values:
                continue
            raw = values[path]
            data = np.ma.filled(np.ma.asarray(raw).astype(np.float64), np.nan)
            present = ~np.isnan(data)
            columns["vehicle"].append(vin_array[present])
            columns["path"].append(np.full(int(present.sum()), path))
            columns["ts"].append(np.full(int(present.sum()), now))
            columns["value"].append(data[present])
    signals = pa.table({k: np.concatenate(v) if v else np.array([]) for k, v in columns.items()})
    rows = [r for r in world.ground_truth.events if r.get("kind") == "failure"]
    events = pa.table({
        "vin": pa.array([str(r["vin"]) for r in rows], pa.string()),
        "component": pa.array([str(r["component"]) for r in rows], pa.string()),
        "kind": pa.array([str(r["kind"]) for r in rows], pa.string()),
        "time_s": pa.array([float(r["time_s"]) for r in rows], pa.float64()),  # type: ignore[arg-type]
    })  # fmt: skip
    return SimulatedHistory(signals, events, vins)
