"""A tenant whose lake holds a simulated fleet's health signals (what ingestion would have
stored: rows under each vehicle's pseudonym) and whose fleet run's ground truth is on disk
— the input of ``drivetrain insights train``."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drivetrain.cloud.fleet import register_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.infra.models import TenantRow
from drivetrain.cloud.insights.booking import LATITUDE, LONGITUDE
from drivetrain.cloud.insights.maintenance_data import SimulatedHistory, simulate_history
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import pseudonymiser
from drivetrain.cloud.twins import apply_reported
from drivetrain.core.crypto import SigningKey
from drivetrain.core.vss.privacy import privacy_category_for

VEHICLES = 30


@functools.cache
def history() -> SimulatedHistory:
    """One seeded accelerated fleet run (30 vehicles, ~2.2 simulated hours, failures in it)."""
    return simulate_history(VEHICLES, seed=3, steps=1600, dt_s=5.0, sample_every_steps=30)


@dataclass(frozen=True)
class FleetLake:
    tenant: str
    vins: tuple[str, ...]
    ground_truth: Path
    start: datetime
    end: datetime


def lake_rows(signals: pa.Table, pseudonyms: dict[str, str]) -> pa.Table:
    """The simulated long table as lake rows: pseudonymous vehicle ids, UTC timestamps, one
    batch per vehicle."""
    vins = signals.column("vehicle").to_pylist()
    paths = signals.column("path").to_pylist()
    ts_ns = (np.asarray(signals.column("ts").to_numpy(), dtype=np.float64) * 1e9).astype(np.int64)
    return pa.table({
        "vehicle": pa.array([pseudonyms[v] for v in vins], pa.utf8()),
        "path": pa.array(paths, pa.utf8()),
        "ts": pa.array(ts_ns, pa.timestamp("ns", tz="UTC")),
        "value": pa.array(signals.column("value").to_numpy(), pa.float64()),
        "text": pa.nulls(len(vins), pa.utf8()),
        "category": pa.array([privacy_category_for(p) for p in paths], pa.utf8()),
        "batch_id": pa.array([hashlib.blake2b(v.encode(), digest_size=16).hexdigest() for v in vins], pa.utf8()),
    })


def fill_tenant(database: Database, lake: Lake, tenant: str, out: Path, *, locations: bool = True) -> FleetLake:
    """Create ``tenant``, register the simulated VINs, write their health signals to the lake
    and the run's ``component_events.parquet`` under ``out`` — the run moved in time (by whole
    5-minute buckets) to end just before now, so its predicted windows lie ahead."""
    run = history()
    ts = run.signals.column("ts").to_numpy()
    shift_s = float(np.floor((datetime.now(UTC).timestamp() - ts.max()) / 300) * 300)
    signals = run.signals.set_column(run.signals.column_names.index("ts"), "ts", pa.array(ts + shift_s))
    times = run.events.column("time_s").to_numpy()
    events = run.events.set_column(run.events.column_names.index("time_s"), "time_s", pa.array(times + shift_s))
    with database.session() as session:
        if session.get(TenantRow, tenant) is None:
            create_tenant(session, tenant, actor="test")
    with database.session() as session:
        for vin in run.vins:
            register_vehicle(session, vin=vin, tenant=tenant, model="compact-bev", region="EU",
                             verify_key=SigningKey.generate().verify_key, actor="test")
        if locations:  # where the booking looks for a vehicle's usual place
            at = datetime.now(UTC)
            apply_reported(session, {vin: {LATITUDE: (48.1 + 0.01 * i, at), LONGITUDE: (11.5, at)}
                                     for i, vin in enumerate(run.vins)})
        pseudonym = pseudonymiser(session, tenant)
        pseudonyms = {vin: pseudonym(vin) for vin in run.vins}
    lake.append("EU", tenant, lake_rows(signals, pseudonyms))
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(events, out / "component_events.parquet")
    return FleetLake(tenant, run.vins, out, datetime.fromtimestamp(float(ts.min() + shift_s), UTC),
                     datetime.fromtimestamp(float(ts.max() + shift_s), UTC))
