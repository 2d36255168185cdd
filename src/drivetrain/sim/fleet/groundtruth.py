"""The ground truth of a fleet run, written under one directory for scoring models later.

Files (Parquet; times are Unix seconds of the simulated clock):

| file | rows |
|---|---|
| ``component_health.parquet`` | per sampled moment and vehicle: component health and remaining useful life (units in the column names), fault flags, battery SoH, odometer |
| ``component_events.parquet`` | fault onsets and failures |
| ``trips.parquet`` | trips; ``in_progress`` is true for a trip still under way when the run ended |
| ``charging_sessions.parquet`` | plug-ins; ``in_progress`` likewise |
| ``attacks.parquet`` | injected bus attacks (kind, time span in simulated seconds since the start, CAN ids, VIN, frames injected and removed) |
| ``manifest.json`` | what the run was: seed, models, vehicles (VIN, model, CAN model, region, ECU inventory), simulated time span, options, counts, and each file with its rows and SHA-256 |
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow.parquet as pq

from drivetrain import __version__
from drivetrain.core.errors import StorageError
from drivetrain.sim.can.ground_truth import AttackRecord, write_records
from drivetrain.sim.fleet.options import RunnerOptions
from drivetrain.sim.fleet.plan import FleetPlan
from drivetrain.sim.fleet.status import FleetStatus
from drivetrain.sim.world.fleet import VirtualFleet

MANIFEST_FILE: Final = "manifest.json"
ATTACKS_FILE: Final = "attacks.parquet"
MANIFEST_VERSION: Final = 1


def close_open_records(world: VirtualFleet) -> None:
    """Add the trips and charging sessions still under way to the world's ground-truth log
    (``in_progress`` true, ended at the simulated time now); mark the finished ones false."""
    log = world.ground_truth
    for row in [*log.trips, *log.sessions]:
        row.setdefault("in_progress", False)
    state = world.physics.state
    now = world.time_utc
    for i, start in enumerate(world.trip_start):
        if start is None:
            continue
        row = dict(start)
        row.update(
            end_s=now,
            end_soc_pct=100.0 * float(state.soc[i]),
            distance_km=(float(state.odometer_m[i]) - float(start["start_odometer_m"])) / 1000.0,  # type: ignore[arg-type]
            battery_out_kwh=float(state.discharged_kwh[i]) - float(start["start_kwh_out"]),  # type: ignore[arg-type]
            battery_in_kwh=float(state.charged_kwh[i]) - float(start["start_kwh_in"]),  # type: ignore[arg-type]
            in_progress=True,
        )
        log.trips.append(row)
    for session in world.sessions:
        if session is None:
            continue
        row = session.to_row()
        row.update(
            end_s=now,
            end_soc_pct=100.0 * float(state.soc[world.vins.index(session.vin)]),
            in_progress=True,
        )
        log.sessions.append(row)


def write_ground_truth(
    out_dir: Path,
    plan: FleetPlan,
    options: RunnerOptions,
    status: FleetStatus,
    attacks: Sequence[AttackRecord] = (),
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write every ground-truth file and the manifest into ``out_dir``; returns the manifest.

    Call once, after the run (open trips and sessions are closed as ``in_progress``).

    Raises:
        StorageError: the directory or a file cannot be written.
    """
    world = plan.world
    close_open_records(world)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {name: path for name, path in world.ground_truth.write_parquet(out_dir).items()}
        attacks_path = out_dir / ATTACKS_FILE
        write_records(attacks_path, list(attacks))
        files[ATTACKS_FILE] = attacks_path
    except OSError as e:
        raise StorageError(f"cannot write ground truth to {out_dir}: {e}") from e
    spec = plan.spec
    manifest = {
        "version": MANIFEST_VERSION,
        "generator": f"drivetrain {__version__}",
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": spec.seed,
        "models": sorted({v.model for v in plan.vehicles}),
        "model_mix": dict(spec.model_mix),
        "regions": list(spec.regions),
        "vehicles": [
            {
                "vin": v.vin,
                "model": v.model,
                "can_model": v.can_model,
                "region": v.region,
                "ecus": [e.to_dict() for e in v.inventory],
            }
            for v in plan.vehicles
        ],
        "sim_time": {
            "start_utc": _iso(plan.start_utc),
            "end_utc": _iso(plan.start_utc + status.sim_time_s),
            "start_unix_s": plan.start_utc,
            "seconds": status.sim_time_s,
        },
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "counts": {
            "frames": status.frames,
            "unknown_frames": status.unknown_frames,
            "signals": status.signals,
            "batches_sealed": status.batches_sealed,
            "failures": status.failures,
            "km_driven": round(status.km_driven, 3),
            "attacks": len(attacks),
        },
        "files": {name: _describe(path) for name, path in sorted(files.items())},
        **dict(extra or {}),
    }
    manifest_path = out_dir / MANIFEST_FILE
    try:
        manifest_path.write_text(
            json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
    except (OSError, ValueError) as e:
        raise StorageError(f"cannot write {manifest_path}: {e}") from e
    return manifest_path


def read_manifest(path: Path) -> dict[str, Any]:
    """Read a manifest written by ``write_ground_truth``.

    Raises:
        StorageError: unreadable, not JSON, or not a manifest of this version.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise StorageError(f"cannot read the fleet manifest {path}: {e}") from e
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise StorageError(f"{path} is not a fleet manifest of version {MANIFEST_VERSION}")
    return data


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    rows = pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else None
    return {"rows": rows, "bytes": path.stat().st_size, "sha256": digest}


def _iso(unix_s: float) -> str:
    if not math.isfinite(unix_s):
        raise ValueError(f"time {unix_s!r} is not finite")
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="seconds")
