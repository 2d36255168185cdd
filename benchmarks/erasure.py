"""Benchmark: crypto-shredding erasure against the rewrite-based erasure.

    python benchmarks/erasure.py [--quick] [--values N] [--vehicles V] [--erase E] [--repeats R]

Input: an encrypted lake (``lake_encryption = "per_vehicle"``) of ``--values`` samples
(default 100 M; ``--quick`` 1 M) of ``--vehicles`` vehicles (default 20,000; ``--quick``
1,000), appended as ingestion does in chunks of 500,000 rows (each vehicle's rows in one chunk,
100 vehicles a chunk at the default sizes: one file per vehicle); and the
same rows in a plain lake (a file per chunk and day, as ingestion writes them). Generated with NumPy in a temporary folder.

Measured in the same run:

- ``key_work_s``: destroying the data keys of ``--erase`` vehicles (default 10,000; ``--quick``
  500) in the local key service — the work that makes their rows unreadable everywhere;
  median of ``--repeats`` runs, each on a fresh copy of the key store;
- ``shred_s``: ``Lake.erase_vehicles`` on the encrypted lake end to end (keys destroyed, then
  the erased vehicles' files deleted from the lake), one run;
- ``baseline_s``: ``Lake.erase_vehicles`` on the plain lake — every file holding any of their
  rows read and rewritten without them — one run; ``ratio`` = ``baseline_s / key_work_s``;
- the check, with DuckDB: through the lake, rows of erased vehicles (``erased_rows_read``, 0)
  and of the others (``kept_rows_read``, all of them); on a hard-linked copy of the lake taken
  before the erasure (a backup), how many of a sample of the erased vehicles' files DuckDB
  (``backup_files_duckdb_read``) and pyarrow with the key service (``backup_files_key_read``)
  could read — 0 of ``backup_files_checked``;
- ``peak_rss_mb``: the process's peak resident memory.

Progress goes to stderr; the last line on stdout is one JSON object (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from drivetrain.cloud.lake import Lake
from drivetrain.cloud.lake.crypto import LakeCipher, key_id_of
from drivetrain.cloud.lake.keys import KeyDestroyedError, LocalKeyService
from drivetrain.core.vss.privacy import privacy_category_for

err = Console(stderr=True)
TENANT = "acme"
PATHS = ["Vehicle.Speed", "Vehicle.CurrentLocation.Latitude",
         "Vehicle.Cabin.HVAC.AmbientAirTemperature", "Vehicle.Chassis.Accelerator.PedalPosition",
         *(f"Vehicle.Powertrain.TractionBattery.CellVoltage.Cell{i}" for i in range(16))]
T0_NS = 1_794_960_000 * 10**9  # a midnight: one date
CHUNK_ROWS = 500_000
SAMPLE_FILES = 100


def _chunk(rng: np.random.Generator, names: list[str], first: int, rows: int,
           chunk: int, per_chunk: int) -> pa.Table:
    """``rows`` samples of ``per_chunk`` vehicles from ``first``, one batch each."""
    per = np.arange(rows) * per_chunk // rows
    categories = sorted({privacy_category_for(p) for p in PATHS})
    category_of_path = np.array([categories.index(privacy_category_for(p)) for p in PATHS],
                                dtype=np.int8)
    path_idx = rng.integers(0, len(PATHS), rows).astype(np.int16)
    vehicle_idx = ((first + per) % len(names)).astype(np.int32)
    return pa.table({
        "vehicle": pa.DictionaryArray.from_arrays(pa.array(vehicle_idx), pa.array(names)),
        "path": pa.DictionaryArray.from_arrays(pa.array(path_idx), pa.array(PATHS)),
        "ts": pa.array(T0_NS + np.sort(rng.integers(0, 86_400 * 10**9, rows)),
                       pa.timestamp("ns", tz="UTC")),
        "value": pa.array(np.round(rng.normal(50, 20, rows), 1)),
        "text": pa.nulls(rows, pa.utf8()),
        "category": pa.DictionaryArray.from_arrays(pa.array(category_of_path[path_idx]),
                                                   pa.array(categories)),
        "batch_id": pa.DictionaryArray.from_arrays(
            pa.array(per.astype(np.int32)),
            pa.array([f"{chunk:016x}{i:016x}" for i in range(per_chunk)])),
    })


def build(lake: Lake, values: int, names: list[str], label: str) -> None:
    """Append ``values`` samples to ``lake`` in ingest-shaped chunks (same rows every call),
    each vehicle's rows in one chunk."""
    rng = np.random.default_rng(7)
    chunks = -(-values // CHUNK_ROWS)
    per_chunk = -(-len(names) // chunks)
    for chunk, start in enumerate(range(0, values, CHUNK_ROWS)):
        rows = min(CHUNK_ROWS, values - start)
        lake.append("EU", TENANT, _chunk(rng, names, chunk * per_chunk, rows, chunk,
                                         per_chunk))
        err.print(f"{label}: {start + rows:,} of {values:,} values", end="\r")
    err.print()


def _in(names: list[str]) -> str:
    return "(" + ", ".join(f"'{n}'" for n in names) + ")"


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _count(lake: Lake, where: str) -> int:
    return int(lake.sql(TENANT, f"SELECT count(*) AS n FROM telemetry WHERE {where}")
               .column("n")[0].as_py())


def check_backup(backup: Path, keys: LocalKeyService, erased_keys: set[str]) -> dict[str, int]:
    """Try to read a sample of the erased vehicles' files in ``backup``, with and without
    the key service."""
    files = [p for p in backup.rglob("*.parquet") if key_id_of(p.name) in erased_keys]
    sample = files[:SAMPLE_FILES]
    by_duckdb = by_key = 0
    cipher = LakeCipher(keys)
    with duckdb.connect() as con:
        for path in sample:
            try:
                con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall()
                by_duckdb += 1
            except duckdb.Error:
                pass
            try:  # straight through pyarrow's key tools, not the lake's skip list
                pq.read_table(path, decryption_properties=cipher._decryption)
                by_key += 1
            except (KeyDestroyedError, OSError):
                pass
    return {"backup_erased_files": len(files), "backup_files_checked": len(sample),
            "backup_files_duckdb_read": by_duckdb, "backup_files_key_read": by_key}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--values", type=int)
    parser.add_argument("--vehicles", type=int)
    parser.add_argument("--erase", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    values = args.values or (1_000_000 if args.quick else 100_000_000)
    vehicles = args.vehicles or (1_000 if args.quick else 20_000)
    erase = args.erase or (500 if args.quick else 10_000)
    if erase > vehicles:
        parser.error(f"--erase {erase} exceeds --vehicles {vehicles}")
    names = [f"{i:024x}" for i in range(vehicles)]
    erased = names[::2][:erase] if erase <= vehicles // 2 else names[:erase]
    with tempfile.TemporaryDirectory(prefix="bench-erasure-") as tmp:
        root = Path(tmp)
        keys_dir = root / "enc" / "keys"
        with Lake(root / "enc", keys=LocalKeyService(keys_dir)) as lake:
            build(lake, values, names, "encrypted lake")
            files = sum(1 for _ in (root / "enc" / "lake").rglob("*.parquet"))
            probe = LocalKeyService(keys_dir)
            erased_keys = set(probe.key_ids(TENANT, erased).values())
            probe.close()
            kept_expected = sum(f.rows for f in lake.files(TENANT)) - sum(
                f.rows for f in lake.files(TENANT) if key_id_of(f.name) in erased_keys)
            # a backup taken before the erasure: hard links, so it costs no copy
            shutil.copytree(root / "enc" / "lake", root / "backup", copy_function=os.link)
            timings = []
            for i in range(args.repeats):  # the key work alone, on fresh copies of the store
                copy = root / f"keys-{i}"
                shutil.copytree(keys_dir, copy)
                service = LocalKeyService(copy)
                began = time.perf_counter()
                destroyed = service.destroy(TENANT, erased)
                timings.append(time.perf_counter() - began)
                service.close()
                assert destroyed == erase, destroyed
            err.print("erasing (crypto-shredding)")
            began = time.perf_counter()
            results = lake.erase_vehicles(TENANT, erased)
            shred_s = time.perf_counter() - began
            rss_mb = _rss_mb()  # the checks below read the lake into memory
            err.print("checking with DuckDB")
            erased_read = _count(lake, f"vehicle IN {_in(erased)}")
            kept_read = _count(lake, "true")
        keys = LocalKeyService(keys_dir)
        backup = check_backup(root / "backup", keys, erased_keys)
        keys.close()
        with Lake(root / "plain") as plain:
            build(plain, values, names, "plain lake")
            err.print("erasing (rewriting the files)")
            began = time.perf_counter()
            plain.erase_vehicles(TENANT, erased)
            baseline_s = time.perf_counter() - began
    key_work_s = statistics.median(timings)
    figures = {
        "erase_vehicles": erase, "lake_vehicles": vehicles, "lake_values": values,
        "lake_files": files, "key_work_s": round(key_work_s, 4),
        "keys_destroyed": sum(r.keys_destroyed for r in results),
        "shred_s": round(shred_s, 3), "baseline_s": round(baseline_s, 3),
        "ratio": round(baseline_s / key_work_s, 1),
        "erased_rows_read": erased_read, "kept_rows_read": kept_read,
        "kept_rows_expected": kept_expected, **backup,
        "peak_rss_mb": rss_mb, "check_peak_rss_mb": _rss_mb(),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
