"""Act "Fleet data lake": residency, exactly-once, queries checked against NumPy, confinement.

The demo's vehicles (half registered in the EU, half in the US) report an hour of 1 Hz
telemetry — speed from a drive profile, state of charge, position, cabin temperature, a
diagnostic — as one-minute batches under their tenant pseudonyms. The act:

1. appends each region's batches to the lake under that region's own root;
2. re-delivers the EU batches — every one must be skipped, none stored twice;
3. asks the live HTTP API for the one-minute mean speed of a vehicle (Arrow IPC) and the
   fleet's mean speed per region (JSON), and checks both against NumPy on the data it sent;
4. checks the per-region counts (``/v1/telemetry/counts``) and that no EU file lies under the
   US root;
5. runs a raw SQL attack (reading a file outside the tenant's data) — it must be refused;
6. compacts the lake and exports one vehicle as a bundle whose hashes verify.
"""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pyarrow as pa

from drivetrain.cloud.lake import Lake, verify_bundle
from drivetrain.cloud.privacy import give_consent, vehicle_pseudonym
from drivetrain.core.vss.privacy import privacy_category_for
from drivetrain.demo.acts import Act, ActResult, DemoContext, Figure

NAME = "lake"
TITLE = "Fleet data lake: residency, exactly-once, queries, confined SQL"
TENANT = "default"  # the bootstrap admin's tenant, so the demo's token may read it
#: Why the speeds are read; each demo driver consents to it for driving behaviour.
PURPOSE = "product_improvement"
HTTP_TIMEOUT_S = 30.0
DRIVE_S = 3600
BATCH_S = 60
ARROW = "application/vnd.apache.arrow.stream"
SIGNALS = (
    "Vehicle.Speed",
    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
    "Vehicle.CurrentLocation.Latitude",
    "Vehicle.CurrentLocation.Longitude",
    "Vehicle.Cabin.HVAC.AmbientAirTemperature",
    "Vehicle.Powertrain.TractionBattery.StateOfHealth",
)


def _drive(rng: np.random.Generator, start_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """One vehicle's hour: (ts_ns, values[signal, second]) at 1 Hz."""
    t = np.arange(DRIVE_S)
    speed = np.clip(60 + 40 * np.sin(t / rng.uniform(200, 400)) + rng.normal(0, 3, DRIVE_S), 0, 160)
    soc = 90 - np.cumsum(speed) / 3600 * 0.2
    lat = 48.1 + np.cumsum(speed) * 1e-6 * rng.uniform(-1, 1)
    lon = 11.5 + np.cumsum(speed) * 1e-6 * rng.uniform(-1, 1)
    cabin = 21 + rng.normal(0, 0.2, DRIVE_S)
    health = np.full(DRIVE_S, rng.uniform(92, 99))
    values = np.round(np.vstack([speed, soc, lat * 1e5, lon * 1e5, cabin, health]), 1)
    values[2:4] /= 1e5
    return start_ns + t.astype(np.int64) * 1_000_000_000, values


def _region_table(vehicles: list[tuple[str, np.ndarray, np.ndarray]], run: str) -> pa.Table:
    """The lake rows of ``vehicles`` (pseudonym, ts, values), one batch per vehicle-minute."""
    n_sig = len(SIGNALS)
    per_vehicle = DRIVE_S * n_sig
    ts = np.concatenate([np.repeat(t, n_sig) for _, t, _ in vehicles])
    values = np.concatenate([v.T.reshape(-1) for _, _, v in vehicles])
    path_idx = np.tile(np.arange(n_sig, dtype=np.int16), DRIVE_S * len(vehicles))
    vehicle_idx = np.repeat(np.arange(len(vehicles), dtype=np.int32), per_vehicle)
    minute = (np.arange(per_vehicle) // (n_sig * BATCH_S)).astype(np.int32)
    batches_per_vehicle = DRIVE_S // BATCH_S
    batch_idx = vehicle_idx * batches_per_vehicle + np.tile(minute, len(vehicles))
    batch_ids = [uuid.uuid5(uuid.NAMESPACE_OID, f"{run}/{p}/{m}").hex
                 for p, _, _ in vehicles for m in range(batches_per_vehicle)]
    categories = sorted({privacy_category_for(p) for p in SIGNALS})
    category_of = np.array([categories.index(privacy_category_for(p)) for p in SIGNALS], np.int8)
    return pa.table({
        "vehicle": pa.DictionaryArray.from_arrays(pa.array(vehicle_idx),
                                                  pa.array([p for p, _, _ in vehicles])),
        "path": pa.DictionaryArray.from_arrays(pa.array(path_idx), pa.array(SIGNALS)),
        "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
        "value": pa.array(values),
        "text": pa.nulls(len(ts), pa.utf8()),
        "category": pa.DictionaryArray.from_arrays(pa.array(category_of[path_idx]),
                                                   pa.array(categories)),
        "batch_id": pa.DictionaryArray.from_arrays(pa.array(batch_idx), pa.array(batch_ids)),
    })


def run(context: DemoContext) -> ActResult:
    """Play the act (see the module docstring)."""
    platform = context.platform
    rng = context.rng(NAME)
    run_id = uuid.uuid4().hex  # a kept --data-dir gets new batches on every run
    start = _free_hour(context)
    start_ns = int(start.timestamp()) * 1_000_000_000
    fleet: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {"EU": [], "US": []}
    with platform.database.session() as session:
        for i in range(context.vehicles):
            vin = f"DTDEMO{context.seed:04d}{i:07d}"[-17:]
            give_consent(session, tenant=TENANT, vin=vin, purpose=PURPOSE,
                         categories=["driving_behaviour"], person="driver", source="driver-app",
                         actor=f"demo:{NAME}")
            ts, values = _drive(rng, start_ns)
            fleet["EU" if i % 2 == 0 else "US"].append(
                (vehicle_pseudonym(session, TENANT, vin), ts, values))
    failures: list[str] = []
    figures: dict[str, Figure] = {}
    with Lake.open(context.settings) as lake:
        before: dict[str, int] = {}
        for row in lake.counts(TENANT).to_pylist():
            before[row["region"]] = before.get(row["region"], 0) + row["rows"]
        tables = {region: _region_table(v, run_id) for region, v in fleet.items() if v}
        context.report("appending one-minute batches per region", fraction=0.1)
        written = {region: lake.append(region, TENANT, t) for region, t in tables.items()}
        stored = sum(r.rows_written for r in written.values())
        figures["values"] = stored
        for region, result in written.items():
            if result.rows_written != tables[region].num_rows:
                failures.append(f"{region}: {result.rows_written} of {tables[region].num_rows} "
                                "values stored")
        context.check_time()
        context.report("re-delivering the EU batches", fraction=0.3)
        again = lake.append("EU", TENANT, tables["EU"])
        figures["redelivered_skipped"] = again.rows_skipped
        if again.rows_written or again.rows_skipped != tables["EU"].num_rows:
            failures.append(f"re-delivery stored {again.rows_written} values again")
        context.check_time()
        _check_queries(context, fleet, start, failures, figures)
        context.check_time()
        counts: dict[str, int] = {}
        for row in lake.counts(TENANT).to_pylist():
            counts[row["region"]] = counts.get(row["region"], 0) + row["rows"]
        for region, table in tables.items():
            if counts.get(region, 0) - before.get(region, 0) != table.num_rows:
                failures.append(f"counts for {region}: {counts.get(region)} (was "
                                f"{before.get(region, 0)}, appended {table.num_rows})")
        figures["per_region"] = ", ".join(f"{r} {n:,}" for r, n in sorted(counts.items()))
        if any(lake.root_of("US").rglob("region=EU")):
            failures.append("an EU partition lies under the US root")
        context.report("compacting and exporting a vehicle", fraction=0.85)
        compacted = lake.compact()
        figures["files_merged"] = sum(c.files_before for c in compacted)
        bundle_dir = context.data_dir / "exports" / f"lake-{run_id[:8]}"
        vehicle = fleet["EU"][0][0]
        manifest = lake.export_bundle(TENANT, "EU", bundle_dir, vehicle)
        verified = verify_bundle(bundle_dir)
        # A kept --data-dir may hold earlier runs of the same vehicles: compare with the lake.
        held = lake.signals(TENANT, [vehicle], None, datetime(1990, 1, 1, tzinfo=UTC),
                            datetime(2100, 1, 1, tzinfo=UTC), regions=["EU"]).num_rows
        if verified.rows != held or held < DRIVE_S * len(SIGNALS):
            failures.append(f"the vehicle's bundle holds {verified.rows} rows, the lake {held}")
        figures["bundle_files"] = len(manifest.files)
    if failures:
        more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
        return ActResult(False, failures[0] + more, figures)
    check = (
        f"{stored:,} values stored under their region's root ({figures['per_region']}); "
        f"{figures['redelivered_skipped']:,} re-delivered values skipped; 1-minute means and "
        "per-region fleet means over the API equal NumPy's; raw SQL outside the tenant refused; "
        f"compacted, and a vehicle bundle of {manifest.rows:,} rows verified"
    )
    return ActResult(True, check, figures)


def _free_hour(context: DemoContext) -> datetime:
    """The start of an hour (two hours ago, or after the tenant's latest data when a kept
    --data-dir holds earlier runs) so the act's aggregates cover its own samples only."""
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    with Lake.open(context.settings) as lake:
        latest = max((f.max_ts_ns for f in lake.files(TENANT)), default=None)
    if latest is not None:
        after = datetime.fromtimestamp(latest // 1_000_000_000, UTC) + timedelta(hours=1)
        start = max(start, after.replace(minute=0, second=0, microsecond=0))
    return start


def _check_queries(
    context: DemoContext,
    fleet: dict[str, list[tuple[str, np.ndarray, np.ndarray]]],
    start: datetime,
    failures: list[str],
    figures: dict[str, Figure],
) -> None:
    platform = context.platform
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    end = start + timedelta(seconds=DRIVE_S)
    window = {"start": start.isoformat(), "end": end.isoformat(), "purpose": PURPOSE}
    pseudonym, _, values = fleet["EU"][0]
    with httpx.Client(base_url=platform.api_url, timeout=HTTP_TIMEOUT_S) as http:
        context.report("1-minute mean speed of one vehicle (Arrow)", fraction=0.45)
        began = time.perf_counter()
        response = http.get("/v1/telemetry/signals", headers={**headers, "Accept": ARROW},
                            params={**window, "vehicle": pseudonym, "path": "Vehicle.Speed",
                                    "every": "1m", "agg": "mean"})
        figures["query_ms"] = round((time.perf_counter() - began) * 1000, 1)
        if response.status_code != 200:
            failures.append(f"signals answered {response.status_code}: {response.text[:160]}")
        else:
            table = pa.ipc.open_stream(io.BytesIO(response.content)).read_all()
            expected = values[0].reshape(-1, 60).mean(axis=1)
            got = np.array(table.column("value").to_pylist())
            if len(got) != len(expected) or not np.allclose(got, expected, rtol=1e-12):
                failures.append("1-minute mean speeds differ from NumPy's")
        context.report("fleet mean speed per region (JSON)", fraction=0.6)
        response = http.get("/v1/telemetry/aggregate", headers=headers,
                            params={**window, "path": "Vehicle.Speed", "group_by": "region"})
        if response.status_code != 200:
            failures.append(f"aggregate answered {response.status_code}: {response.text[:160]}")
        else:
            got_means = {r["region"]: r["value"] for r in response.json()["data"]}
            for region, vehicles in fleet.items():
                if not vehicles:
                    continue
                expected_mean = float(np.mean([v[0] for _, _, v in vehicles]))
                if not np.isclose(got_means.get(region, np.nan), expected_mean, rtol=1e-9):
                    failures.append(f"fleet mean speed in {region}: {got_means.get(region)} "
                                    f"vs NumPy {expected_mean}")
        context.report("raw SQL reaching outside the tenant", fraction=0.75)
        response = http.post("/v1/telemetry/sql", headers=headers,
                             params={"purpose": PURPOSE},
                             json={"query": "SELECT * FROM read_text('/etc/passwd')"})
        if response.status_code != 422:
            failures.append(f"raw SQL reading /etc/passwd answered {response.status_code}")


LAKE = Act(name=NAME, title=TITLE, run=run, weight=0.5)
