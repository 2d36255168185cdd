"""Act "Telemetry lands": the simulated fleet's data is in the lake, by region, minus what was
not consented.

After "fleet drives", the act reads that run's manifest (vehicles, regions, the vehicle that
withheld location consent) and asks the lake (``drivetrain.cloud.lake``):

- rows per region, vehicle and privacy category (``Lake.sql`` over the tenant's confined view,
  vehicles by their tenant pseudonym; ``Lake.counts`` for the tenant's totals): every region
  the fleet drove in has rows, and each vehicle's rows lie in its own region;
- location rows per vehicle: the vehicle without location consent has none, every other
  vehicle has some;
- every vehicle has stored telemetry at all.

Figures: rows per region, location rows.
"""

from __future__ import annotations

from typing import Any, Final

from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import pseudonymiser
from drivetrain.core.errors import StorageError
from drivetrain.demo.act_fleet_drives import NO_LOCATION_KEY, TENANT, fleet_dir
from drivetrain.demo.acts import Act, ActResult, DemoContext, Figure
from drivetrain.sim.fleet.groundtruth import MANIFEST_FILE, read_manifest

NAME = "telemetry-lands"
TITLE = "Telemetry lands: queryable per region, consent enforced"
LOCATION: Final = "location"


def run(context: DemoContext) -> ActResult:
    """Query the lake for the fleet's data (see the module docstring)."""
    path = fleet_dir(context) / MANIFEST_FILE
    try:
        manifest = read_manifest(path)
    except StorageError as e:
        return ActResult(False, f"no fleet run to check: {e} (the 'fleet drives' act writes it)")
    tenant = str(manifest.get("tenant", TENANT))
    vehicles: list[dict[str, Any]] = manifest["vehicles"]
    no_location = str(manifest.get(NO_LOCATION_KEY, ""))
    with context.platform.database.session() as session:
        pseudonym = pseudonymiser(session, tenant)
        vin_of = {pseudonym(v["vin"]): v["vin"] for v in vehicles}
    shared: Lake | None = getattr(context.platform, "lake", None)
    lake = shared if shared is not None else Lake.open(context.settings)
    try:
        context.report("counting rows per region", fraction=0.2)
        counts = lake.counts(tenant).to_pylist()
        context.check_time()
        context.report("location rows per vehicle", fraction=0.5)
        rows = lake.sql(
            tenant,
            "SELECT region, vehicle, category, count(*) AS n FROM telemetry "
            "GROUP BY region, vehicle, category",
        ).to_pylist()
    finally:
        if shared is None:
            lake.close()
    return _verdict(vehicles, no_location, vin_of, counts, rows)


def _verdict(
    vehicles: list[dict[str, Any]],
    no_location: str,
    vin_of: dict[str, str],
    counts: list[dict[str, Any]],
    rows: list[dict[str, Any]],
) -> ActResult:
    """``counts``: the tenant's rows per region and category (``Lake.counts``); ``rows``:
    rows per region, vehicle pseudonym and category (``Lake.sql``)."""
    tenant_rows = sum(int(row["rows"]) for row in counts)
    per_region: dict[str, int] = {}
    location: dict[str, int] = {}
    stored: dict[str, int] = {}
    misplaced: list[str] = []
    region_of = {v["vin"]: v["region"] for v in vehicles}
    for row in rows:
        vin = vin_of.get(row["vehicle"])
        if vin is None:
            continue  # another run's vehicle in the same tenant
        n = int(row["n"])
        if row["region"] != region_of[vin]:
            misplaced.append(f"{vin} ({region_of[vin]}) has {n} rows under {row['region']}")
        per_region[row["region"]] = per_region.get(row["region"], 0) + n
        stored[vin] = stored.get(vin, 0) + n
        if row["category"] == LOCATION:
            location[vin] = location.get(vin, 0) + n
    figures: dict[str, Figure] = {f"rows_{r}": n for r, n in sorted(per_region.items())}
    figures["location_rows"] = sum(location.values())
    problems: list[str] = list(misplaced[:3])
    if sum(stored.values()) > tenant_rows:
        problems.append(
            f"SQL sees {sum(stored.values()):,} rows, the lake index counts {tenant_rows:,}"
        )
    regions = sorted({v["region"] for v in vehicles})
    empty = [r for r in regions if not per_region.get(r)]
    if empty:
        problems.append(f"no rows stored for region(s) {', '.join(empty)}")
    missing = [v["vin"] for v in vehicles if not stored.get(v["vin"])]
    if missing:
        problems.append(f"{len(missing)} vehicles have no stored telemetry (e.g. {missing[0]})")
    if location.get(no_location):
        problems.append(
            f"{no_location} withheld location consent but has {location[no_location]:,} location rows"
        )
    without = [v["vin"] for v in vehicles if v["vin"] != no_location and not location.get(v["vin"])]
    if without:
        problems.append(
            f"{len(without)} consenting vehicles have no location rows (e.g. {without[0]})"
        )
    if problems:
        return ActResult(False, "; ".join(problems), figures)
    regions_text = ", ".join(f"{r} {per_region[r]:,}" for r in regions)
    check = (
        f"the fleet's telemetry is queryable: rows per region {regions_text}; "
        f"{no_location} (no location consent) has 0 location rows, the other "
        f"{len(vehicles) - 1} vehicles have {sum(location.values()):,}"
    )
    return ActResult(True, check, figures)


TELEMETRY_LANDS = Act(NAME, TITLE, run, weight=0.5)
