"""A tenant whose lake holds a simulated fleet's trips (speed, ambient, altitude, pack state,
odometer) and whose fleet run's ground truth is on disk: ``trips.parquet`` with each trip's
measured battery energy (the simulator's physics over the trip's route, grade included) and
``component_health.parquet`` with each vehicle's true state of health — the input of
``drivetrain insights train --model energy|battery``."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from insights_fleet import lake_rows

from drivetrain.cloud.fleet import register_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.infra.models import TenantRow
from drivetrain.cloud.insights import fleet_models as fm
from drivetrain.cloud.insights.energy import STEP_S, PhysicsEnergy, TripInput
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import pseudonymiser
from drivetrain.core.crypto import SigningKey

VEHICLES = 10
TRIPS_PER_VEHICLE = 3
SAMPLE_S = 6.0  # what the vehicles report while driving


@dataclass(frozen=True)
class Simulated:
    vins: tuple[str, ...]
    models: tuple[str, ...]
    signals: pa.Table  # vehicle (VIN), path, ts (Unix s), value
    trips: pa.Table
    health: pa.Table


def _speed_profile(rng: np.random.Generator, minutes: float) -> np.ndarray:
    """Speed (km/h) every STEP_S: cruising legs at varied speeds with stops between."""
    steps = int(minutes * 60 / STEP_S)
    targets = np.repeat(rng.choice([0.0, 30, 50, 50, 70, 90, 110], size=steps // 60 + 1), 60)[:steps]
    targets[:5] = targets[-5:] = 0.0
    speed = np.zeros(steps)
    for i in range(1, steps):  # at most ~2 m/s² towards the target
        speed[i] = speed[i - 1] + np.clip(targets[i] - speed[i - 1], -14.0, 7.0)
    return np.clip(speed + rng.normal(0.0, 1.0, steps) * (speed > 5), 0.0, None)


@functools.cache
def simulate(now_s: float) -> Simulated:
    """A seeded virtual fleet (its vehicles' models, ages, SoH and odometers) driving
    ``TRIPS_PER_VEHICLE`` trips each over the last day before ``now_s``."""
    from drivetrain.sim.world.fleet import FleetConfig, VirtualFleet

    world = VirtualFleet(FleetConfig(vehicles=VEHICLES, seed=11))
    world.record_ground_truth()
    health = world.ground_truth.health_table()
    soh = np.asarray(health.column("battery_soh_pct").to_numpy())
    odometer = np.asarray(health.column("odometer_m").to_numpy(), dtype=np.float64).copy()
    models = tuple(m.name for m in world.models)
    rng = np.random.default_rng(5)
    columns: dict[str, list[np.ndarray]] = {"vehicle": [], "path": [], "ts": [], "value": []}
    trips: list[dict[str, object]] = []
    inputs: list[TripInput] = []

    def emit(vin: str, path: str, ts: np.ndarray, values: np.ndarray) -> None:
        columns["vehicle"].append(np.full(ts.size, vin))
        columns["path"].append(np.full(ts.size, path))
        columns["ts"].append(ts)
        columns["value"].append(np.asarray(values, dtype=np.float64))

    for i, vin in enumerate(world.vins):
        for k in range(TRIPS_PER_VEHICLE):
            start = now_s - 86_400 + (k * 7 + i * 0.4) * 3600.0
            speed = _speed_profile(rng, float(rng.uniform(5, 11)))
            t = start + np.arange(speed.size) * STEP_S
            ambient = np.full(speed.size, float(rng.uniform(-5, 25)))
            climb = float(rng.uniform(-60, 60))
            distance = np.cumsum(speed / 3.6 * STEP_S)
            altitude = 200.0 + climb * distance / max(distance[-1], 1.0)
            grade = np.gradient(altitude) / np.maximum(speed / 3.6 * STEP_S, 0.5) * (speed > 1)
            soc = float(rng.uniform(0.4, 0.9))
            trip = TripInput(f"{vin}-{k}", speed, ambient, soc, float(ambient[0]) + 3, float(soh[i]) / 100,
                             grade=np.clip(grade, -0.15, 0.15))
            inputs.append(trip)
            every = int(SAMPLE_S / STEP_S)
            sample = slice(0, None, every)
            for path, values in ((fm.SPEED, speed), (fm.AMBIENT, ambient), (fm.ALTITUDE, altitude)):
                emit(vin, path, t[sample], values[sample])
            emit(vin, fm.SOC, t[:1], np.array([100 * soc]))
            emit(vin, fm.PACK, t[:1], np.array([ambient[0] + 3]))
            odometer[i] += distance[-1]
            end = t[-1] + STEP_S
            emit(vin, fm.SOH, np.array([start, end]), np.array([soh[i], soh[i]]))
            emit(vin, fm.ODOMETER, np.array([end]), np.array([odometer[i]]))
            emit(vin, fm.ENERGY_LEFT, np.array([end]), np.array([soc * 45.0]))
            trips.append({"vin": vin, "start_s": start, "end_s": end, "distance_km": distance[-1] / 1000,
                          "charge_stops": 0, "in_progress": False})
    # The "real" energy: the physics with the route's grade and the vehicle's model, plus what
    # it does not model (colder trips cost more) and noise.
    kwh = PhysicsEnergy(tire_rolling_factor=1.0).predict_kwh(inputs, [models[j // TRIPS_PER_VEHICLE] for j in range(len(inputs))])
    for trip, e, row in zip(inputs, kwh, trips, strict=True):
        cold = 1.0 + 0.015 * max(15.0 - float(trip.ambient_c[0]), 0.0)
        row.update(battery_out_kwh=float(e) * cold * float(rng.normal(1.0, 0.03)) + 0.3, battery_in_kwh=0.3)
    signals = pa.table({k: np.concatenate(v) for k, v in columns.items()})
    return Simulated(tuple(world.vins), models, signals, pa.Table.from_pylist(trips), health)


@dataclass(frozen=True)
class TripsLake:
    tenant: str
    vins: tuple[str, ...]
    ground_truth: Path
    start: datetime
    end: datetime


def fill_tenant(database: Database, lake: Lake, tenant: str, out: Path) -> TripsLake:
    """Create ``tenant``, register the VINs with their models, write their signals to the lake
    and the run's ground truth under ``out``."""
    now_s = float(np.floor(datetime.now(UTC).timestamp() / 3600) * 3600)
    run = simulate(now_s)
    with database.session() as session:
        if session.get(TenantRow, tenant) is None:
            create_tenant(session, tenant, actor="test")
    with database.session() as session:
        for vin, model in zip(run.vins, run.models, strict=True):
            register_vehicle(session, vin=vin, tenant=tenant, model=model, region="EU",
                             verify_key=SigningKey.generate().verify_key, actor="test")
        pseudonym = pseudonymiser(session, tenant)
        pseudonyms = {vin: pseudonym(vin) for vin in run.vins}
    lake.append("EU", tenant, lake_rows(run.signals, pseudonyms))
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(run.trips, out / fm.TRIPS_FILE)
    pq.write_table(run.health, out / fm.HEALTH_FILE)
    ts = run.signals.column("ts").to_numpy()
    return TripsLake(tenant, run.vins, out, datetime.fromtimestamp(float(ts.min()), UTC),
                     datetime.fromtimestamp(float(ts.max()), UTC))
