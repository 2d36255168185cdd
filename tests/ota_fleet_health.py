"""Real fleet health for the OTA gate's tests: telemetry rows written into the lake exactly
as ingestion writes them (the tenant's pseudonym, the signal's privacy category, one batch
id per drive), and security events stored as ingestion stores a vehicle's batch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest.records import add_events
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.ota.health import DTC_COUNT, ENERGY_LEFT, ODOMETER
from drivetrain.cloud.privacy import vehicle_pseudonym
from drivetrain.cloud.security import SECURITY_EVENT_TYPE
from drivetrain.core.vss.privacy import privacy_category_for
from drivetrain.core.wire import VehicleEvent

SPEED_KMH = 60.0
STEP_S = 10


def drive(database: Database, lake: Lake, *, tenant: str, vin: str, start: datetime,
          minutes: int, kwh_per_100km: float, dtcs: int = 0) -> None:
    """``vin`` drives at 60 km/h from ``start`` for ``minutes``, using ``kwh_per_100km``; its
    active DTC count rises by one ``dtcs`` times, evenly spread."""
    with database.session() as session:
        pseudonym = vehicle_pseudonym(session, tenant, vin)
    steps = minutes * 60 // STEP_S
    rows: dict[str, list[object]] = {k: [] for k in ("path", "ts", "value")}
    for n in range(steps + 1):
        ts = int((start + timedelta(seconds=n * STEP_S)).timestamp()) * 10**9
        km = SPEED_KMH * n * STEP_S / 3600.0
        count = dtcs * n // steps if steps else 0
        for path, value in ((ODOMETER, 10_000_000.0 + km * 1000.0),
                            (ENERGY_LEFT, 40.0 - km * kwh_per_100km / 100.0),
                            (DTC_COUNT, float(count))):
            rows["path"].append(path)
            rows["ts"].append(ts)
            rows["value"].append(value)
    paths = [ODOMETER, ENERGY_LEFT, DTC_COUNT]
    categories = sorted({privacy_category_for(p) for p in paths})
    n = len(rows["ts"])
    table = pa.table({
        "vehicle": pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()),
                                                  pa.array([pseudonym])),
        "path": pa.DictionaryArray.from_arrays(
            pa.array([paths.index(str(p)) for p in rows["path"]], pa.int16()), pa.array(paths)),
        "ts": pa.array(rows["ts"], pa.timestamp("ns", tz="UTC")),
        "value": pa.array(rows["value"], pa.float64()),
        "text": pa.nulls(n, pa.utf8()),
        "category": pa.DictionaryArray.from_arrays(
            pa.array([categories.index(privacy_category_for(str(p))) for p in rows["path"]],
                     pa.int8()), pa.array(categories)),
        "batch_id": pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()),
                                                   pa.array([uuid.uuid4().hex])),
    })
    lake.append("EU", tenant, table)


def security_events(database: Database, *, tenant: str, vin: str, at: datetime,
                    count: int) -> None:
    """``count`` IDS detections ``vin`` reported a minute apart from ``at``."""
    events = [(n, VehicleEvent(SECURITY_EVENT_TYPE,
                               int((at + timedelta(minutes=n)).timestamp()) * 10**9, "high",
                               {"signature": "can.flood", "sensor": "frame", "count": 40,
                                "score": 0.97}))
              for n in range(count)]
    with database.session() as session:
        add_events(session, tenant=tenant, vin=vin, batch_id=uuid.uuid4().hex, events=events,
                   now=datetime.now(UTC))
