"""History: the value of one twin property over time, served from the telemetry lake.

The twin keeps only the latest reported value; every sample ingestion stored lives in the lake
(``drivetrain.cloud.lake``), keyed by the tenant's pseudonym of the vehicle, never its VIN.
This module checks the caller may see the twin, maps the VIN to its pseudonym
(``drivetrain.cloud.privacy``) and reads the one path from the vehicle's region.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import pyarrow as pa
from sqlalchemy.orm import Session

from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import vehicle_pseudonyms
from drivetrain.cloud.twins.registry import twin_row
from drivetrain.cloud.twins.values import from_ns, render_reported
from drivetrain.core.errors import BadInputError
from drivetrain.core.vss import Catalog, builtin_catalog

#: Most points one history read returns (down-sample with ``every`` for longer ranges).
MAX_POINTS: Final = 10_000


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One point: when, the value (in the signal's VSS type) and, when down-sampled, how many
    samples the bucket held."""

    ts: datetime
    value: bool | int | float | str | None
    samples: int | None = None


def property_history(
    session: Session,
    lake: Lake,
    vin: str,
    path: str,
    *,
    tenant: str,
    start: datetime,
    end: datetime,
    every: str | None = None,
    agg: str = "mean",
    catalog: Catalog | None = None,
) -> list[HistoryPoint]:
    """Values of ``path`` of ``vin`` in [start, end), raw or down-sampled (``every`` such as
    ``"1m"``, aggregated by ``agg``: mean, min, max or last), oldest first.

    Raises:
        NotFoundError: no such vehicle in ``tenant``.
        UnknownSignalError: ``path`` is not a VSS signal.
        QueryError: a bad interval, aggregation or time range, or more than MAX_POINTS points.
        BadInputError: naive timestamps.
        StorageError: the lake cannot be read.
    """
    catalog = catalog or builtin_catalog()
    catalog.get(path)
    if start.tzinfo is None or end.tzinfo is None:
        raise BadInputError("history start and end must be timezone-aware")
    row = twin_row(session, vin, tenant=tenant)
    pseudonyms = list(vehicle_pseudonyms(session, tenant, vin))  # before a key rotation too
    table = lake.signals(
        tenant, pseudonyms, [path], start, end, every, agg, regions=[row.region],
        max_rows=MAX_POINTS,
    )
    if len(pseudonyms) > 1:  # the lake orders by vehicle first; a history reads by time
        table = table.sort_by([("ts", "ascending")])
    return _points(table, path, catalog)


def _points(table: pa.Table, path: str, catalog: Catalog) -> list[HistoryPoint]:
    if table.num_rows == 0:
        return []
    ts = table.column("ts").cast(pa.int64()).to_pylist()
    values = table.column("value").to_pylist()
    texts = table.column("text").to_pylist() if "text" in table.column_names else [None] * len(ts)
    samples = (
        table.column("samples").to_pylist() if "samples" in table.column_names else None
    )
    points = []
    for i, ns in enumerate(ts):
        value: bool | int | float | str | None = texts[i]
        if value is None and samples is None:
            value = render_reported(catalog, path, "f", values[i], None)
        elif value is None:  # an aggregate of a bucket stays a number (a mean of booleans...)
            value = values[i]
        points.append(HistoryPoint(
            ts=from_ns(ns), value=value, samples=int(samples[i]) if samples is not None else None,
        ))
    points.sort(key=lambda p: p.ts)
    return points
