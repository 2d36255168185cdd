"""The health the rollout gate judges, measured by the platform — never handed in by a caller.

For each vehicle over a window ``[start, end)``:

- **distance and energy** from the vehicle's telemetry in the lake
  (``Vehicle.TraveledDistance``, m, and
  ``Vehicle.Powertrain.TractionBattery.StateOfCharge.CurrentEnergy``, kWh), down-sampled to
  the last value of each ``BUCKET``: distance is the odometer's rise, energy the sum of the
  energy left's drops (a rise is charging, not use, and is left out);
- **error DTCs raised**: the rises of ``Vehicle.Diagnostics.DTCCount`` (each new active
  trouble code) in the same telemetry;
- **hours** of telemetry: from the vehicle's first to its last bucket in the window;
- **security events** it reported in the window, counted by the security domain
  (:func:`drivetrain.cloud.security.count_security_events`).

The lake keys vehicles by the tenant's pseudonym (:func:`drivetrain.cloud.privacy.pseudonymiser`);
the gate reads them under the fleet-safety purpose of an update campaign, like the insights
domain does for its models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime
from itertools import pairwise
from typing import Final

from sqlalchemy.orm import Session

from drivetrain.cloud.lake import Lake
from drivetrain.cloud.ota.rollout import VehicleHealth
from drivetrain.cloud.privacy import pseudonymiser
from drivetrain.cloud.security import count_security_events

ODOMETER: Final = "Vehicle.TraveledDistance"
ENERGY_LEFT: Final = "Vehicle.Powertrain.TractionBattery.StateOfCharge.CurrentEnergy"
DTC_COUNT: Final = "Vehicle.Diagnostics.DTCCount"
PATHS: Final = (ODOMETER, ENERGY_LEFT, DTC_COUNT)
#: The down-sampling step of the telemetry read (the last value of each bucket).
BUCKET: Final = "10s"
#: Most rows one read returns (about 10 vehicles x 3 signals x a day of 10 s buckets x 10).
MAX_ROWS: Final = 2_000_000
#: Vehicles read from the lake at a time.
CHUNK: Final = 500


def _rises(values: list[float]) -> float:
    return sum(max(0.0, b - a) for a, b in pairwise(values))


def _drops(values: list[float]) -> float:
    return sum(max(0.0, a - b) for a, b in pairwise(values))


def measure_health(session: Session, lake: Lake, *, tenant: str, vins: Collection[str],
                   start: datetime, end: datetime) -> dict[str, VehicleHealth]:
    """Each of ``vins``' health over ``[start, end)`` (see the module doc); a vehicle with
    no telemetry in the window has 0 hours (the gate leaves it out).

    Raises:
        QueryError: the window is not a valid time range.
        StorageError: the lake cannot be read.
    """
    wanted = sorted(set(vins))
    pseudonym = pseudonymiser(session, tenant)
    by_pseudonym = {pseudonym(vin): vin for vin in wanted}
    series: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    span: dict[str, tuple[int, int]] = {}
    names = sorted(by_pseudonym)
    for n in range(0, len(names), CHUNK):
        table = lake.signals(tenant, names[n:n + CHUNK], list(PATHS), start, end, BUCKET,
                             "last", max_rows=MAX_ROWS)
        columns = table.to_pydict()
        for vehicle, path, ts, value in zip(columns["vehicle"], columns["path"], columns["ts"],
                                            columns["value"], strict=True):
            vin = by_pseudonym.get(vehicle)
            if vin is None or value is None:
                continue
            series[vin][path].append(float(value))
            t = int(ts.timestamp() * 1e9)
            first, last = span.get(vin, (t, t))
            span[vin] = (min(first, t), max(last, t))
    events = count_security_events(session, tenant=tenant, vins=wanted,
                                   since_ns=int(start.timestamp() * 1e9),
                                   until_ns=int(end.timestamp() * 1e9))
    out: dict[str, VehicleHealth] = {}
    for vin in wanted:
        s = series.get(vin, {})
        first, last = span.get(vin, (0, 0))
        out[vin] = VehicleHealth(
            vin=vin, distance_km=_rises(s.get(ODOMETER, [])) / 1000.0,
            energy_kwh=_drops(s.get(ENERGY_LEFT, [])), hours=(last - first) / 3.6e12,
            dtcs=round(_rises(s.get(DTC_COUNT, []))), security_events=events.get(vin, 0))
    return out
