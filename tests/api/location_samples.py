"""Position samples in the lake's row format, for the safe-aggregate tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa

LAT, LON = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MUNICH, BERLIN = (48.1351, 11.5821), (52.5201, 13.4051)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def positions(cars: dict[str, tuple[float, float]]) -> pa.Table:
    """Ten minutes of positions (one a minute) per car (pseudonym -> lat, lon)."""
    rows = [(p, path, T0 + timedelta(minutes=m), value)
            for p, (lat, lon) in cars.items() for m in range(10)
            for path, value in ((LAT, lat), (LON, lon))]
    n = len(rows)

    def dictionary(values: list[str], index: pa.DataType) -> pa.DictionaryArray:
        names = sorted(set(values))
        return pa.DictionaryArray.from_arrays(pa.array([names.index(v) for v in values], index),
                                              pa.array(names))

    return pa.table({
        "vehicle": dictionary([r[0] for r in rows], pa.int32()),
        "path": dictionary([r[1] for r in rows], pa.int16()),
        "ts": pa.array([int(r[2].timestamp()) * 10**9 for r in rows],
                       pa.timestamp("ns", tz="UTC")),
        "value": pa.array([r[3] for r in rows], pa.float64()),
        "text": pa.nulls(n, pa.utf8()),
        "category": dictionary(["location"] * n, pa.int8()),
        "batch_id": dictionary([uuid.uuid4().hex] * n, pa.int32()),
    })
