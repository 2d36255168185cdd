"""Benchmark: ``Lake.append`` throughput against a plain pyarrow Parquet write.

    python benchmarks/lake_append.py [--quick] [--rows N] [--appends K] [--repeats R]

Input: ``--appends`` tables (default 20; ``--quick`` 6) of ``--rows`` samples each (default
500,000), shaped as ingestion hands them over — 1,000 vehicle batches one after another, each
of one vehicle, 40 VSS paths, timestamps in order, values at 0.1 resolution — generated with
NumPy, with fresh batch ids every time (nothing is skipped as a duplicate).

Measured in the same run, paired (ours then the baseline, ``--repeats`` pairs after one
untimed warm-up), medians over the pairs, the ratio the median of the per-pair ratios:

- ``append_rows_per_s``: ``Lake.append`` end to end — checks, deduplication against the
  index, the Parquet write, fsyncs, both index transactions and the renames;
- ``write_rows_per_s``: the Parquet write alone with the lake's settings (``write_parquet``);
- ``baseline_rows_per_s``: ``pyarrow.parquet.write_table`` with pyarrow's defaults, no checks,
  no index, no fsync — the straightforward way to put the same table on disk;
- ``file_bytes`` / ``baseline_file_bytes``: the size on disk of the last repeat's tables
  written with the lake's Parquet settings / with pyarrow's defaults.

``ratio`` = append / baseline (higher is better; below 1 means the guarantees cost time).
On a shared machine wall-clock rates fall with the neighbours' load, so the CPU time of this
process is measured as well: ``append_rows_per_cpu_s`` and ``write_rows_per_cpu_s`` are rows
per CPU-second (per core), which a busy neighbour changes far less.
Progress goes to stderr; the last line on stdout is one JSON object (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from drivetrain.cloud.lake import Lake
from drivetrain.cloud.lake.rows import normalize_rows
from drivetrain.cloud.lake.store import write_parquet
from drivetrain.core.vss.privacy import privacy_category_for

err = Console(stderr=True)
PATHS = [f"Vehicle.Powertrain.TractionBattery.CellVoltage.Cell{i}" for i in range(34)] + [
    "Vehicle.Speed", "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude",
    "Vehicle.Cabin.HVAC.AmbientAirTemperature", "Vehicle.Powertrain.TractionBattery.StateOfHealth",
    "Vehicle.Chassis.Accelerator.PedalPosition",
]


def make_table(rng: np.random.Generator, rows: int, batch_base: int, start_ns: int) -> pa.Table:
    """``rows`` samples in 1,000 vehicle batches with fresh batch ids."""
    batches = 1_000
    batch_of_row = (np.arange(rows) * batches // rows).astype(np.int32)
    vehicle_idx = rng.permutation(10_000)[:batches].astype(np.int32)[batch_of_row]
    path_idx = rng.integers(0, len(PATHS), rows).astype(np.int16)
    categories = sorted({privacy_category_for(p) for p in PATHS})
    category_of_path = np.array([categories.index(privacy_category_for(p)) for p in PATHS],
                                dtype=np.int8)
    return pa.table({
        "vehicle": pa.DictionaryArray.from_arrays(
            pa.array(vehicle_idx), pa.array([f"{i:024x}" for i in range(10_000)])),
        "path": pa.DictionaryArray.from_arrays(pa.array(path_idx), pa.array(PATHS)),
        "ts": pa.array(start_ns + np.sort(rng.integers(0, 60 * 10**9, rows)),
                       pa.timestamp("ns", tz="UTC")),
        "value": pa.array(np.round(rng.normal(3.7, 0.2, rows), 1)),
        "text": pa.nulls(rows, pa.utf8()),
        "category": pa.DictionaryArray.from_arrays(pa.array(category_of_path[path_idx]),
                                                   pa.array(categories)),
        "batch_id": pa.DictionaryArray.from_arrays(
            pa.array(batch_of_row), pa.array([f"{batch_base + i:032x}" for i in range(batches)])),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 appends; under a minute")
    parser.add_argument("--rows", type=int, default=500_000, help="samples per append")
    parser.add_argument("--appends", type=int, help="appends per measurement (default 20)")
    parser.add_argument("--repeats", type=int, help="measurement pairs (default 5, quick 3)")
    args = parser.parse_args(argv)
    appends = args.appends or (6 if args.quick else 20)
    repeats = max(1, args.repeats or (3 if args.quick else 5))
    rng = np.random.default_rng(7)
    start_ns = 1_714_521_600 * 10**9
    total = args.rows * appends
    err.print(f"{appends} appends of {args.rows:,} rows, {repeats} repeats")

    with tempfile.TemporaryDirectory(prefix="lake_append_bench_") as tmp:
        root = Path(tmp)
        lake = Lake(root / "lake")
        serial = iter(range(10**9))

        def fresh() -> list[pa.Table]:
            return [make_table(rng, args.rows, next(serial) * 1_000, start_ns)
                    for _ in range(appends)]

        cpu: dict[str, list[float]] = {"append": [], "write": []}

        def ours(tables: list[pa.Table]) -> float:
            began, began_cpu = time.perf_counter(), time.process_time()
            for table in tables:
                lake.append("EU", "bench", table)
            cpu["append"].append(time.process_time() - began_cpu)
            return time.perf_counter() - began

        def write_only(tables: list[pa.Table]) -> float:
            normalized = [normalize_rows(t) for t in tables]
            began, began_cpu = time.perf_counter(), time.process_time()
            for i, table in enumerate(normalized):
                write_parquet(table, root / f"w{i}.parquet")
            cpu["write"].append(time.process_time() - began_cpu)
            return time.perf_counter() - began

        def baseline(tables: list[pa.Table]) -> float:
            began = time.perf_counter()
            for i, table in enumerate(tables):
                pq.write_table(table, root / f"b{i}.parquet")
            return time.perf_counter() - began

        warm = fresh()
        ours(warm[:1]), write_only(warm[:1]), baseline(warm[:1])
        append_rates, write_rates, base_rates, ratios = [], [], [], []
        with err.status("measuring"):
            for _ in range(repeats):
                tables = fresh()
                a = total / ours(tables)
                w = total / write_only(tables)
                b = total / baseline(tables)
                append_rates.append(a)
                write_rates.append(w)
                base_rates.append(b)
                ratios.append(a / b)
        # Bytes on disk of the last repeat's tables: the lake's Parquet settings vs the defaults.
        file_bytes = sum((root / f"w{i}.parquet").stat().st_size for i in range(appends))
        baseline_file_bytes = sum((root / f"b{i}.parquet").stat().st_size for i in range(appends))
        stored = lake.sql("bench", "SELECT count(*) AS n FROM telemetry").column("n")[0].as_py()
        lake.close()
    expected = args.rows + repeats * total
    if stored != expected:
        raise SystemExit(f"the lake holds {stored:,} rows; expected {expected:,}")
    result = {
        "rows_per_append": args.rows,
        "appends": appends,
        "repeats": repeats,
        "append_rows_per_s": round(statistics.median(append_rates)),
        "write_rows_per_s": round(statistics.median(write_rates)),
        "baseline_rows_per_s": round(statistics.median(base_rates)),
        "append_rows_per_cpu_s": round(total / statistics.median(cpu["append"][1:])),
        "write_rows_per_cpu_s": round(total / statistics.median(cpu["write"][1:])),
        "file_bytes": file_bytes,
        "baseline_file_bytes": baseline_file_bytes,
        "ratio": round(statistics.median(ratios), 2),
    }
    err.print(f"append {result['append_rows_per_s']:,} rows/s, lake Parquet write "
              f"{result['write_rows_per_s']:,} rows/s, plain pyarrow write "
              f"{result['baseline_rows_per_s']:,} rows/s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
