"""Factories for lake tests: telemetry tables with the lake's row columns (imported by the
test modules of this directory)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from drivetrain.core.vss.privacy import privacy_category_for

#: Signals of every privacy category but cabin, as the ingest path hands them over.
PATHS = (
    "Vehicle.Speed",
    "Vehicle.CurrentLocation.Latitude",
    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
    "Vehicle.Powertrain.TractionBattery.StateOfHealth",
    "Vehicle.Cabin.HVAC.AmbientAirTemperature",
)
T0 = datetime(2024, 5, 1, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000
NS_DAY = 86_400 * 1_000_000_000


def vehicle_id(i: int) -> str:
    """A pseudonym-shaped vehicle id (24 hex digits)."""
    return f"{i:024x}"


def batch_id(seed: int, i: int) -> str:
    """A batch id (32 hex digits) unique per (seed, i)."""
    return f"{seed:08x}{i:024x}"


def make_rows(
    n: int,
    *,
    seed: int = 0,
    vehicles: int = 5,
    batches: int = 10,
    start_ns: int = T0_NS,
    span_s: float = 3600.0,
    paths: Sequence[str] = PATHS,
    dictionary: bool = True,
) -> pa.Table:
    """``n`` samples: random vehicles and paths, timestamps over ``span_s`` seconds from
    ``start_ns`` (ordered), values with 1/10 resolution, ``batches`` consecutive batch ids."""
    rng = np.random.default_rng(seed)
    path_idx = rng.integers(0, len(paths), n).astype(np.int16)
    vehicle_idx = rng.integers(0, vehicles, n).astype(np.int32)
    batch_idx = (np.arange(n) * batches // max(n, 1)).astype(np.int32)
    ts = start_ns + np.sort(rng.integers(0, int(span_s * 1e9), n))
    categories = [privacy_category_for(p) for p in paths]
    distinct = sorted(set(categories))
    category_idx = np.array([distinct.index(c) for c in categories], dtype=np.int8)[path_idx]
    columns = {
        "vehicle": pa.DictionaryArray.from_arrays(
            pa.array(vehicle_idx), pa.array([vehicle_id(i) for i in range(vehicles)])),
        "path": pa.DictionaryArray.from_arrays(pa.array(path_idx), pa.array(list(paths))),
        "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
        "value": pa.array(np.round(rng.normal(50, 20, n), 1)),
        "text": pa.nulls(n, pa.utf8()),
        "category": pa.DictionaryArray.from_arrays(pa.array(category_idx), pa.array(distinct)),
        "batch_id": pa.DictionaryArray.from_arrays(
            pa.array(batch_idx), pa.array([batch_id(seed, i) for i in range(batches)])),
    }
    table = pa.table(columns)
    if not dictionary:
        table = pa.table({
            name: col.cast(pa.utf8()) if pa.types.is_dictionary(col.type) else col
            for name, col in zip(table.column_names, table.columns)
        })
    return table


def plain(table: pa.Table) -> pa.Table:
    """``table`` with dictionary columns decoded to strings (for comparisons)."""
    return pa.table({
        name: col.cast(pa.utf8()) if pa.types.is_dictionary(col.type) else col
        for name, col in zip(table.column_names, table.columns)
    })


def sorted_rows(table: pa.Table, columns: Sequence[str] = ("vehicle", "path", "ts", "value",
                                                           "batch_id")) -> list[tuple[object, ...]]:
    """The rows of ``table`` (selected columns, strings decoded) as sorted tuples."""
    t = plain(table.select(list(columns)))
    t = t.set_column(t.column_names.index("ts"), "ts", t.column("ts").cast(pa.int64())) \
        if "ts" in columns else t
    return sorted(zip(*(t.column(c).to_pylist() for c in columns)), key=repr)
