"""Benchmark: fleet aggregates over the telemetry lake, DuckDB (ours) against pyarrow.dataset.

    python benchmarks/lake_query.py [--quick] [--rows N] [--repeats R] [--data-dir DIR]

Data set: ``--rows`` stored signal values (default 100,000,000; ``--quick``: 10,000,000) of one
tenant — 1,000 vehicles, 40 VSS paths of all five privacy categories, 10 days, 70 % in EU and
30 % in US — generated once with vectorised NumPy/pyarrow, written through ``Lake.append`` in
1 M-row batches and compacted (``Lake.compact``), exactly as the lake stores ingested data. It
is kept in a cache directory (``--data-dir``, default
``~/.cache/drivetrain/bench/lake_query/<rows>``) and reused by later runs; it is never
committed.

Measured in the same run, each measurement paired with its baseline (run back to back,
``--repeats`` pairs after one untimed warm-up of each), figures are medians over the pairs and
each ratio is the median of the per-pair ratios (baseline time / our time):

(a) ``fleet``: ``Lake.fleet_aggregate(path="Vehicle.Speed", group_by="day", agg="mean")``
    over the whole time range, against the same aggregate with ``pyarrow.dataset`` over the
    same files (hive partitioning, the same filter pushed down) and a pyarrow ``group_by``;
(b) ``scan``: an aggregate touching every stored value — ``Lake.sql`` with
    ``SELECT region, path, count(*), avg(value) FROM telemetry GROUP BY ALL`` — against the
    same with ``pyarrow.dataset`` + ``group_by``.

Both sides' results are compared (equal groups, counts, means within 1e-9 relative) before any
figure is printed. Progress goes to stderr; the last line on stdout is one JSON object (see
benchmarks/README.md): ``stored_values``, ``p50_ms``/``baseline_p50_ms``/``ratio`` for (a),
``scan_p50_ms``/``scan_baseline_p50_ms``/``scan_ratio`` for (b).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from rich.console import Console

from drivetrain.cloud.lake import Lake
from drivetrain.core.vss.privacy import privacy_category_for

FULL_ROWS = 100_000_000
QUICK_ROWS = 10_000_000
VEHICLES = 1_000
DAYS = 10
CHUNK_ROWS = 1_000_000
TENANT = "bench"
DAY0 = datetime(2024, 5, 1, tzinfo=UTC)
FLEET_PATH = "Vehicle.Speed"
CACHE_VERSION = 2

#: (VSS path, typical value, spread): 40 signals of all five privacy categories.
SIGNALS: list[tuple[str, float, float]] = [
    ("Vehicle.Speed", 60.0, 30.0),
    ("Vehicle.TraveledDistance", 40_000.0, 20_000.0),
    ("Vehicle.Acceleration.Longitudinal", 0.0, 1.5),
    ("Vehicle.Acceleration.Lateral", 0.0, 1.0),
    ("Vehicle.AngularVelocity.Yaw", 0.0, 5.0),
    ("Vehicle.Chassis.Accelerator.PedalPosition", 20.0, 15.0),
    ("Vehicle.Chassis.Brake.PedalPosition", 5.0, 8.0),
    ("Vehicle.Chassis.SteeringWheel.Angle", 0.0, 30.0),
    ("Vehicle.CurrentLocation.Latitude", 48.1, 0.5),
    ("Vehicle.CurrentLocation.Longitude", 11.5, 0.5),
    ("Vehicle.CurrentLocation.Altitude", 520.0, 50.0),
    ("Vehicle.CurrentLocation.Heading", 180.0, 100.0),
    ("Vehicle.Cabin.HVAC.AmbientAirTemperature", 21.0, 3.0),
    ("Vehicle.Cabin.Door.Row1.DriverSide.IsOpen", 0.0, 0.2),
    ("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", 60.0, 20.0),
    ("Vehicle.Powertrain.TractionBattery.StateOfHealth", 95.0, 2.0),
    ("Vehicle.Powertrain.TractionBattery.CurrentVoltage", 390.0, 10.0),
    ("Vehicle.Powertrain.TractionBattery.CurrentCurrent", 20.0, 60.0),
    ("Vehicle.Powertrain.TractionBattery.Temperature.Average", 28.0, 6.0),
    ("Vehicle.Powertrain.TractionBattery.CurrentPower", 15.0, 25.0),
    ("Vehicle.Powertrain.ElectricMotor.Speed", 4_000.0, 2_500.0),
    ("Vehicle.Powertrain.ElectricMotor.Torque", 80.0, 60.0),
    ("Vehicle.Powertrain.ElectricMotor.CoolantTemperature", 45.0, 8.0),
    ("Vehicle.Powertrain.Range", 280.0, 90.0),
    ("Vehicle.Powertrain.Transmission.CurrentGear", 1.0, 0.5),
    ("Vehicle.Exterior.AirTemperature", 14.0, 8.0),
    ("Vehicle.Body.Lights.Beam.Low.IsOn", 0.0, 0.5),
    ("Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure", 250.0, 10.0),
    ("Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure", 250.0, 10.0),
    ("Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure", 245.0, 10.0),
    ("Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure", 245.0, 10.0),
    ("Vehicle.Chassis.Axle.Row1.Wheel.Left.Speed", 600.0, 300.0),
    ("Vehicle.Chassis.Axle.Row1.Wheel.Right.Speed", 600.0, 300.0),
    ("Vehicle.Diagnostics.DTCCount", 0.0, 0.3),
    ("Vehicle.Service.DistanceToService", 12_000.0, 5_000.0),
    ("Vehicle.ADAS.CruiseControl.IsActive", 0.0, 0.5),
    ("Vehicle.ADAS.ABS.IsEngaged", 0.0, 0.1),
    ("Vehicle.Powertrain.TractionBattery.Charging.ChargeRate", 0.0, 20.0),
    ("Vehicle.Powertrain.TractionBattery.Charging.IsCharging", 0.0, 0.4),
    ("Vehicle.LowVoltageBattery.CurrentVoltage", 13.8, 0.3),
]

err = Console(stderr=True)


def _chunk(rng: np.random.Generator, rows: int, start_ns: int, span_ns: int, batch_base: int,
           vehicles: pa.Array, paths: pa.Array, categories: pa.Array,
           category_of_path: np.ndarray, means: np.ndarray, spreads: np.ndarray) -> pa.Table:
    # As ingestion hands them over: 1,000 vehicle batches one after another, each of one
    # vehicle, samples of random signals in time order.
    batches = 1_000
    batch_of_row = (np.arange(rows) * batches // rows).astype(np.int32)
    vehicle_of_batch = rng.permutation(len(vehicles))[:batches].astype(np.int32)
    vehicle_idx = vehicle_of_batch[batch_of_row]
    path_idx = rng.integers(0, len(paths), rows).astype(np.int16)
    ts = start_ns + np.sort(rng.integers(0, span_ns, rows))
    values = np.round(means[path_idx] + spreads[path_idx] * rng.standard_normal(rows), 1)
    batch_ids = pa.array([f"{batch_base + i:032x}" for i in range(batches)])
    return pa.table({
        "vehicle": pa.DictionaryArray.from_arrays(pa.array(vehicle_idx), vehicles),
        "path": pa.DictionaryArray.from_arrays(pa.array(path_idx), paths),
        "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
        "value": pa.array(values),
        "text": pa.nulls(rows, pa.utf8()),
        "category": pa.DictionaryArray.from_arrays(pa.array(category_of_path[path_idx]), categories),
        "batch_id": pa.DictionaryArray.from_arrays(pa.array(batch_of_row), batch_ids),
    })


def generate(data_dir: Path, rows: int) -> float:
    """Write ``rows`` values into a fresh lake at ``data_dir``; returns append rows/s."""
    rng = np.random.default_rng(20240501)
    vehicles = pa.array([f"{i:024x}" for i in range(VEHICLES)])
    paths = pa.array([p for p, _, _ in SIGNALS])
    category_names = sorted({privacy_category_for(p) for p, _, _ in SIGNALS})
    categories = pa.array(category_names)
    category_of_path = np.array([category_names.index(privacy_category_for(p))
                                 for p, _, _ in SIGNALS], dtype=np.int8)
    means = np.array([m for _, m, _ in SIGNALS])
    spreads = np.array([s for _, _, s in SIGNALS])
    day_ns = 86_400 * 10**9
    plan: list[tuple[str, int, int, int]] = []  # (region, rows, start_ns, span_ns)
    per_day = rows // DAYS
    for day in range(DAYS):
        day_rows = per_day if day < DAYS - 1 else rows - per_day * (DAYS - 1)
        for region, share in (("EU", 0.7), ("US", 0.3)):
            region_rows = int(day_rows * share) if region == "EU" else day_rows - int(day_rows * 0.7)
            chunks = max(1, -(-region_rows // CHUNK_ROWS))
            start = int(DAY0.timestamp()) * 10**9 + day * day_ns
            for k in range(chunks):
                n = region_rows // chunks + (1 if k < region_rows % chunks else 0)
                plan.append((region, n, start + k * day_ns // chunks, day_ns // chunks))
    written, seconds = 0, 0.0
    with Lake(data_dir) as lake, err.status("") as status:
        for i, (region, n, start, span) in enumerate(plan):
            status.update(f"generating: {written:,} of {rows:,} values appended")
            table = _chunk(rng, n, start, span, i * 1_000, vehicles, paths, categories,
                           category_of_path, means, spreads)
            began = time.perf_counter()
            lake.append(region, TENANT, table)
            seconds += time.perf_counter() - began
            written += n
        status.update("compacting")
        lake.compact()
    return written / seconds


def _timed(run: Callable[[], object]) -> tuple[float, object]:
    began = time.perf_counter()
    result = run()
    return (time.perf_counter() - began) * 1000, result


def _paired(ours: Callable[[], object], baseline: Callable[[], object], repeats: int
            ) -> tuple[float, float, float, object, object]:
    ours(), baseline()  # warm-up: file metadata and page cache for both sides
    ours_ms, base_ms, ratios = [], [], []
    ours_result = base_result = None
    for _ in range(repeats):
        a, ours_result = _timed(ours)
        b, base_result = _timed(baseline)
        ours_ms.append(a)
        base_ms.append(b)
        ratios.append(b / a)
    return (statistics.median(ours_ms), statistics.median(base_ms), statistics.median(ratios),
            ours_result, base_result)


def _same(ours: dict[Any, tuple[int, float]], theirs: dict[Any, tuple[int, float]],
          what: str) -> None:
    if ours.keys() != theirs.keys():
        raise SystemExit(f"{what}: groups differ: {sorted(ours)[:3]} vs {sorted(theirs)[:3]}")
    for key, (count, mean) in ours.items():
        other_count, other_mean = theirs[key]
        if count != other_count or abs(mean - other_mean) > 1e-9 * max(1.0, abs(mean)):
            raise SystemExit(f"{what}: group {key}: {count}/{mean} vs {other_count}/{other_mean}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} values; under a minute")
    parser.add_argument("--rows", type=int, help="stored signal values (default 100 M, quick 10 M)")
    parser.add_argument("--repeats", type=int, help="measurement pairs (default 5, quick 3)")
    parser.add_argument("--data-dir", type=Path, help="where the generated lake is kept")
    args = parser.parse_args(argv)
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    repeats = max(1, args.repeats or (3 if args.quick else 5))
    data_dir = args.data_dir or Path.home() / ".cache" / "drivetrain" / "bench" / "lake_query" / str(rows)
    marker = data_dir / "complete.json"
    append_rate = None
    if not marker.is_file() or json.loads(marker.read_text()).get("version") != CACHE_VERSION:
        shutil.rmtree(data_dir, ignore_errors=True)
        append_rate = generate(data_dir, rows)
        marker.write_text(json.dumps({"version": CACHE_VERSION, "rows": rows,
                                      "append_rows_per_s": round(append_rate)}))
        err.print(f"generated {rows:,} values in {data_dir} (append {append_rate:,.0f} rows/s)")
    else:
        err.print(f"reusing {rows:,} values in {data_dir}")

    lake = Lake(data_dir)
    files = [str(lake.root_of(f.region) / f.name) for f in lake.files(TENANT)]
    stored = sum(f.rows for f in lake.files(TENANT))
    if stored != rows:
        raise SystemExit(f"the cached lake holds {stored:,} values, expected {rows:,}")
    start, end = DAY0, DAY0 + timedelta(days=DAYS)
    start_ns, end_ns = int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9
    err.print(f"{stored:,} stored values in {len(files)} files, {repeats} repeats")

    dataset = ds.dataset(files, format="parquet", partitioning="hive",
                         partition_base_dir=str(data_dir / "lake"))
    # partition_base_dir makes pyarrow parse region=/tenant=/date= below the region roots.

    def ours_fleet() -> dict[object, tuple[int, float]]:
        table = lake.fleet_aggregate(TENANT, FLEET_PATH, start, end, group_by="day", agg="mean")
        return {r["day"]: (r["samples"], r["value"]) for r in table.to_pylist()}

    def baseline_fleet() -> dict[object, tuple[int, float]]:
        condition = ((ds.field("path") == FLEET_PATH) & (ds.field("tenant") == TENANT)
                     & (ds.field("ts") >= pa.scalar(start_ns, pa.timestamp("ns", "UTC")))
                     & (ds.field("ts") < pa.scalar(end_ns, pa.timestamp("ns", "UTC"))))
        table = dataset.to_table(columns=["date", "value"], filter=condition)
        grouped = table.group_by("date").aggregate([("value", "count"), ("value", "mean")])
        days = [datetime.strptime(str(d), "%Y-%m-%d").date() for d in grouped["date"].to_pylist()]
        return dict(zip(days, zip(grouped["value_count"].to_pylist(),
                                  grouped["value_mean"].to_pylist())))

    scan_sql = ("SELECT region, path, count(value) AS n, avg(value) AS mean FROM telemetry "
                "GROUP BY ALL")

    def ours_scan() -> dict[object, tuple[int, float]]:
        table = lake.sql(TENANT, scan_sql, timeout_s=3600)
        return {(r["region"], r["path"]): (r["n"], r["mean"]) for r in table.to_pylist()}

    def baseline_scan() -> dict[object, tuple[int, float]]:
        table = dataset.to_table(columns=["region", "path", "value"],
                                 filter=ds.field("tenant") == TENANT)
        table = table.set_column(1, "path", pc.cast(table.column("path"), pa.utf8()))
        grouped = table.group_by(["region", "path"]).aggregate(
            [("value", "count"), ("value", "mean")])
        keys = zip(grouped["region"].to_pylist(), grouped["path"].to_pylist())
        return dict(zip(keys, zip(grouped["value_count"].to_pylist(),
                                  grouped["value_mean"].to_pylist())))

    with err.status(f"fleet aggregate of {FLEET_PATH} per day: DuckDB vs pyarrow.dataset"):
        fleet_ms, fleet_base_ms, fleet_ratio, a, b = _paired(ours_fleet, baseline_fleet, repeats)
    _same(a, b, "fleet aggregate")  # type: ignore[arg-type]
    fleet_values = sum(n for n, _ in a.values())  # type: ignore[attr-defined]
    err.print(f"fleet aggregate: {fleet_ms:,.1f} ms, pyarrow.dataset {fleet_base_ms:,.1f} ms")
    with err.status("scan aggregate of every value per region and path"):
        scan_ms, scan_base_ms, scan_ratio, a, b = _paired(ours_scan, baseline_scan, repeats)
    _same(a, b, "scan aggregate")  # type: ignore[arg-type]
    err.print(f"scan aggregate: {scan_ms:,.1f} ms, pyarrow.dataset {scan_base_ms:,.1f} ms")
    lake.close()

    result = {
        "stored_values": stored,
        "files": len(files),
        "repeats": repeats,
        "fleet_path": FLEET_PATH,
        "fleet_values": fleet_values,
        "p50_ms": round(fleet_ms, 2),
        "baseline_p50_ms": round(fleet_base_ms, 2),
        "ratio": round(fleet_ratio, 2),
        "scan_p50_ms": round(scan_ms, 2),
        "scan_baseline_p50_ms": round(scan_base_ms, 2),
        "scan_ratio": round(scan_ratio, 2),
    }
    if append_rate is not None:
        result["append_rows_per_s"] = round(append_rate)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
