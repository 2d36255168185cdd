"""Releasing a safe location aggregate: read what the purpose covers, charge the budget,
compute the release (the I/O shell around :mod:`drivetrain.cloud.privacy.aggregates`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.cloud.infra import Database
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy.aggregates import (
    NS_PER_HOUR,
    BoundingBox,
    LocationSamples,
    Release,
    dp_counts,
    k_anonymous,
)
from drivetrain.cloud.privacy.budget import Budget, budget_of, spend
from drivetrain.cloud.privacy.purposes import ReadPermit
from drivetrain.core.errors import BadInputError

LATITUDE: Final = "Vehicle.CurrentLocation.Latitude"
LONGITUDE: Final = "Vehicle.CurrentLocation.Longitude"
#: The longest window one release may cover.
MAX_WINDOW_S: Final = 31 * 86_400
#: Most per-minute position rows one release reads from the lake.
MAX_ROWS: Final = 5_000_000
Method = Literal["k_anonymity", "differential_privacy"]


@dataclass(frozen=True, slots=True)
class LocationQuery:
    """What a caller asks: a window, a cell size, per hour or not, and how to protect it."""

    start: datetime
    end: datetime
    cell_deg: float
    per_hour: bool
    method: Method
    k: int
    epsilon: float | None = None
    bbox: BoundingBox | None = None
    max_groups_per_vehicle: int = 8

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (what the budget ledger records)."""
        box = self.bbox
        return {"statistic": "vehicles per cell", "start": self.start.isoformat(),
                "end": self.end.isoformat(), "cell_deg": self.cell_deg,
                "per_hour": self.per_hour, "method": self.method, "k": self.k,
                "bbox": None if box is None else [box.south, box.west, box.north, box.east]}


def check_query(query: LocationQuery, *, min_k: int) -> None:
    """Refuse a query the settings or the method do not allow.

    Raises:
        BadInputError: ``k`` below ``min_k``, a window not in (0, 31 days], or a
            differentially private query without ``epsilon`` or ``bbox``.
    """
    if query.k < min_k:
        raise BadInputError(f"k {query.k} is below this installation's minimum group of "
                            f"{min_k} vehicles (setting privacy_min_group_vehicles)")
    seconds = (query.end - query.start).total_seconds()
    if not 0 < seconds <= MAX_WINDOW_S:
        raise BadInputError(f"the window from {query.start.isoformat()} to "
                            f"{query.end.isoformat()} is not 1 s to 31 days long")
    if query.method == "differential_privacy" and (query.epsilon is None or query.bbox is None):
        raise BadInputError("a differentially private release needs epsilon (its cost) and "
                            "bbox (south,west,north,east: the public area whose every cell "
                            "is noised)")


def location_samples(lake: Lake, tenant: str, query: LocationQuery,
                     permit: ReadPermit) -> LocationSamples:
    """Per vehicle and minute, its last position in the window (what ``permit`` covers)."""
    table = lake.signals(tenant, None, [LATITUDE, LONGITUDE], query.start, query.end,
                         "1m", "last", max_rows=MAX_ROWS, permit=permit.allowed)
    lat = table.filter(pc.equal(table["path"], LATITUDE))
    lon = table.filter(pc.equal(table["path"], LONGITUDE))
    joined = lat.select(["vehicle", "ts", "value"]).join(
        lon.select(["vehicle", "ts", "value"]).rename_columns(["vehicle", "ts", "lon"]),
        keys=["vehicle", "ts"], join_type="inner")
    joined = joined.filter(pc.and_(pc.is_valid(joined["value"]), pc.is_valid(joined["lon"])))
    ts = joined["ts"].cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    return LocationSamples(
        vehicle=np.asarray(joined["vehicle"].to_pylist(), dtype=object),
        lat=joined["value"].to_numpy().astype(np.float64),
        lon=joined["lon"].to_numpy().astype(np.float64),
        ts_ns=ts.to_numpy().astype(np.int64),
    )


def release_locations(
    database: Database, lake: Lake, *, tenant: str, actor: str, query: LocationQuery,
    permit: ReadPermit, budget_total: float, request_id: str | None,
) -> tuple[Release, Budget | None]:
    """The release of ``query`` over what ``permit`` covers, and (differential privacy) the
    tenant's budget after paying for it — charged before the data is read.

    Raises:
        PrivacyBudgetExhaustedError: the budget cannot pay ``epsilon`` (nothing is read).
        DifferentialPrivacyUnavailableError: OpenDP is not installed (checked first).
    """
    if query.method == "k_anonymity":
        samples = location_samples(lake, tenant, query, permit)
        return k_anonymous(samples, k=query.k, cell_deg=query.cell_deg,
                           per_hour=query.per_hour), None
    assert query.epsilon is not None and query.bbox is not None  # check_query
    first = int(query.start.timestamp() * 1e9) // NS_PER_HOUR
    last = (int(query.end.timestamp() * 1e9) - 1) // NS_PER_HOUR
    hours = list(range(first, last + 1))
    empty = LocationSamples(np.array([], dtype=object), np.array([]), np.array([]),
                            np.array([], dtype=np.int64))
    # Validate the whole release (and that OpenDP is there) before anything is charged.
    dp_counts(empty, bbox=query.bbox, hours=hours, epsilon=query.epsilon, k=query.k,
              cell_deg=query.cell_deg, max_groups_per_vehicle=query.max_groups_per_vehicle,
              per_hour=query.per_hour)
    with database.session() as session:
        budget = spend(session, tenant, query.epsilon, total=budget_total, actor=actor,
                       query=query.to_dict(), request_id=request_id)
    samples = location_samples(lake, tenant, query, permit)
    release = dp_counts(samples, bbox=query.bbox, hours=hours, epsilon=query.epsilon,
                        k=query.k, cell_deg=query.cell_deg,
                        max_groups_per_vehicle=query.max_groups_per_vehicle,
                        per_hour=query.per_hour)
    return release, budget


__all__ = ["LocationQuery", "budget_of", "check_query", "location_samples",
           "release_locations"]
