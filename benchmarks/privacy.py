"""Benchmark: erasure in the lake, and export/import throughput of a tenant.

    python benchmarks/privacy.py [--quick] [--values N] [--vehicles V] [--erase E] [--repeats R]

Input: a lake of ``--values`` samples (default 20 M; ``--quick`` 2 M) of ``--vehicles``
vehicles (default 10,000; ``--quick`` 2,000) over 4 days, appended as ingestion does (batches
of one vehicle, 20 VSS paths of every privacy category), with the tenant, registry rows and
pseudonym key in a SQLite state database. Generated with NumPy in a temporary folder.

Measured in the same run:

- ``erase_seconds``: ``Lake.erase_vehicles`` removing ``--erase`` vehicles (default 1,000;
  ``--quick`` 100) — every file holding any of their rows read and rewritten without them,
  swapped through the index — median of ``--repeats`` runs, each on a fresh copy of the lake;
  ``erase_rows_removed``, ``erase_files_rewritten``, ``lake_rows_per_s`` (lake rows scanned
  per second of erasure);
- ``baseline_erase_seconds``: the straightforward way with pyarrow — read the whole tenant's
  dataset, filter the vehicles out, write it back as new files (no index, no atomic swap);
  ``erase_ratio`` = baseline / ours (higher is better);
- ``export_rows_per_s`` / ``import_rows_per_s``: ``export_data`` of the whole tenant (state
  sections, JSON Schemas, Parquet per region and date, SHA-256 of every file) and
  ``import_bundle`` into a fresh installation (checksums verified, rows appended whole batch
  by whole batch), telemetry rows per second; ``baseline_copy_rows_per_s``: the telemetry
  copied with ``pyarrow.dataset.write_dataset`` (no checks, no manifest);
  ``export_ratio`` = export / baseline copy.

Progress goes to stderr; the last line on stdout is one JSON object (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from rich.console import Console

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.lake import LAKE_SCHEMA, Lake
from drivetrain.cloud.portability import Subject, export_data, import_bundle
from drivetrain.cloud.privacy import pseudonymiser
from drivetrain.core.crypto import SigningKey
from drivetrain.core.vss.privacy import privacy_category_for

err = Console(stderr=True)
TENANT = "acme"
PATHS = [
    "Vehicle.Speed", "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude",
    "Vehicle.Cabin.HVAC.AmbientAirTemperature", "Vehicle.Powertrain.TractionBattery.StateOfHealth",
    "Vehicle.Chassis.Accelerator.PedalPosition", "Vehicle.Diagnostics.DTCCount",
    *(f"Vehicle.Powertrain.TractionBattery.CellVoltage.Cell{i}" for i in range(13)),
]
DAY_NS = 86_400 * 10**9
T0_NS = 1_795_000_000 * 10**9


def _chunk(rng: np.random.Generator, names: list[str], rows: int, first_batch: int,
           day: int) -> pa.Table:
    """``rows`` samples in batches of one vehicle each (1,000 batches per chunk)."""
    batches = 1_000
    batch_of_row = (np.arange(rows) * batches // rows).astype(np.int32)
    vehicle_of_batch = rng.integers(0, len(names), batches).astype(np.int32)
    path_idx = rng.integers(0, len(PATHS), rows).astype(np.int16)
    categories = sorted({privacy_category_for(p) for p in PATHS})
    category_of_path = np.array([categories.index(privacy_category_for(p)) for p in PATHS],
                                dtype=np.int8)
    return pa.table({
        "vehicle": pa.DictionaryArray.from_arrays(pa.array(vehicle_of_batch[batch_of_row]),
                                                  pa.array(names)),
        "path": pa.DictionaryArray.from_arrays(pa.array(path_idx), pa.array(PATHS)),
        "ts": pa.array(T0_NS + day * DAY_NS + np.sort(rng.integers(0, DAY_NS, rows)),
                       pa.timestamp("ns", tz="UTC")),
        "value": pa.array(np.round(rng.normal(50, 20, rows), 1)),
        "text": pa.nulls(rows, pa.utf8()),
        "category": pa.DictionaryArray.from_arrays(pa.array(category_of_path[path_idx]),
                                                   pa.array(categories)),
        "batch_id": pa.DictionaryArray.from_arrays(
            pa.array(batch_of_row),
            pa.array([f"{first_batch + i:032x}" for i in range(batches)])),
    })


def build(root: Path, values: int, vehicles: int) -> tuple[list[str], list[str]]:
    """State database and lake under ``root``; returns (VINs, pseudonyms)."""
    database = Database(f"sqlite:///{root / 'state.db'}")
    database.upgrade()
    cloud = SigningKey.generate().verify_key
    vins = []
    with database.session() as session:
        create_tenant(session, TENANT, actor="bench")
        rng = random.Random(1)
        for _ in range(min(vehicles, 200)):  # registry rows for the state sections
            vehicle, _ = provision_vehicle(session, tenant=TENANT, model="compact-bev",
                                           region="EU", cloud_key=cloud, actor="bench", rng=rng)
            vins.append(vehicle.vin)
        vins += [f"BENCH{i:012d}" for i in range(vehicles - len(vins))]
        pseudonym = pseudonymiser(session, TENANT)
        names = [pseudonym(v) for v in vins]
    database.dispose()
    rng_np = np.random.default_rng(7)
    chunk = 500_000
    with Lake(root / "data") as lake:
        for i, start in enumerate(range(0, values, chunk)):
            rows = min(chunk, values - start)
            lake.append("EU", TENANT, _chunk(rng_np, names, rows, i * 1_000, i % 4))
            err.print(f"lake: {start + rows:,} of {values:,} values", end="\r")
    err.print()
    return vins, names


def baseline_erase(root: Path, erased: list[str]) -> float:
    """Read the tenant's whole dataset, filter the vehicles out, write it back (pyarrow)."""
    began = time.perf_counter()
    files = [str(p) for p in (root / "data" / "lake").rglob("part-*.parquet")]
    table = ds.dataset(files, schema=LAKE_SCHEMA, format="parquet").to_table()
    keep = pc.invert(pc.is_in(table.column("vehicle").cast(pa.utf8()),
                              value_set=pa.array(erased)))
    ds.write_dataset(table.filter(keep), root / "baseline-out", format="parquet",
                     max_rows_per_file=4_000_000)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--values", type=int)
    parser.add_argument("--vehicles", type=int)
    parser.add_argument("--erase", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    values = args.values or (2_000_000 if args.quick else 20_000_000)
    vehicles = args.vehicles or (2_000 if args.quick else 10_000)
    erase = args.erase or (100 if args.quick else 1_000)
    if not 1 <= erase <= vehicles:
        parser.error(f"--erase {erase} must be 1 to --vehicles {vehicles}")
    with tempfile.TemporaryDirectory(prefix="drivetrain-privacy-bench-") as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        _, names = build(base, values, vehicles)
        erased = names[:erase]
        ours, theirs, last = [], [], None
        for repeat in range(args.repeats):
            work = Path(tmp) / f"run{repeat}"
            shutil.copytree(base, work)
            with Lake(work / "data") as lake:
                began = time.perf_counter()
                last = lake.erase_vehicles(TENANT, erased)
                ours.append(time.perf_counter() - began)
            theirs.append(baseline_erase(work, erased))
            err.print(f"erase {repeat + 1}/{args.repeats}: ours {ours[-1]:.2f} s, "
                      f"baseline {theirs[-1]:.2f} s")
            shutil.rmtree(work)
        assert last is not None
        removed = sum(r.rows_removed for r in last)
        database = Database(f"sqlite:///{base / 'state.db'}")
        with Lake(base / "data") as lake:
            began = time.perf_counter()
            manifest = export_data(database, lake, Subject(TENANT), Path(tmp) / "export",
                                   actor="bench")
            export_s = time.perf_counter() - began
        database.dispose()
        telemetry_rows = sum(t.rows for t in manifest.telemetry)
        began = time.perf_counter()
        ds.write_dataset(ds.dataset(str(base / "data" / "lake"), format="parquet",
                                    schema=LAKE_SCHEMA), Path(tmp) / "copy", format="parquet")
        copy_s = time.perf_counter() - began
        target = Path(tmp) / "target"
        target.mkdir()
        target_db = Database(f"sqlite:///{target / 'state.db'}")
        target_db.upgrade()
        with Lake(target / "data") as target_lake:
            began = time.perf_counter()
            report = import_bundle(target_db, target_lake, Path(tmp) / "export", actor="bench")
            import_s = time.perf_counter() - began
        target_db.dispose()
    figures = {
        "values": values, "vehicles": vehicles, "erased_vehicles": erase,
        "erase_seconds": round(statistics.median(ours), 3),
        "baseline_erase_seconds": round(statistics.median(theirs), 3),
        "erase_ratio": round(statistics.median(b / o for o, b in zip(ours, theirs)), 3),
        "erase_rows_removed": removed,
        "erase_files_rewritten": sum(r.files_rewritten + r.files_deleted for r in last),
        "lake_rows_per_s": round(values / statistics.median(ours)),
        "export_rows_per_s": round(telemetry_rows / export_s),
        "import_rows_per_s": round(report.telemetry_written / import_s),
        "baseline_copy_rows_per_s": round(telemetry_rows / copy_s),
        "export_ratio": round(copy_s / export_s, 3),
        "export_seconds": round(export_s, 3), "import_seconds": round(import_s, 3),
        "exported_rows": telemetry_rows, "imported_rows": report.telemetry_written,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
