"""Why a lake read came back empty, in words: the likely cause, most specific first.

An empty answer is a valid answer, but a newcomer who asks for ``Vehicle.Speed`` after a
simulated run and gets "0 rows" deserves to hear that speed is driving-behaviour data, which
the default consent drops at ingestion. The causes looked at, in order:

1. the tenant does not exist (an error, not an empty answer);
2. the tenant has no telemetry at all, or none in the regions asked for;
3. a path is not a signal of the catalog (with "did you mean");
4. a path's privacy category was never stored for the tenant: the vehicles' consent does
   not cover it, so ingestion dropped it;
5. the time range misses the span of the tenant's data;
6. the vehicles asked for have no data in the range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from drivetrain.commands.db import fail
from drivetrain.commands.output import iso_from_ns

if TYPE_CHECKING:
    from drivetrain.cloud.lake import Lake, LakeFile
    from drivetrain.core.settings import Settings


@dataclass(frozen=True)
class EmptyQuery:
    """What was asked, for explaining an empty answer."""

    tenant: str
    paths: Sequence[str] = ()
    vehicles: Sequence[str] = ()
    vins: Sequence[str] = ()
    start: datetime | None = None
    end: datetime | None = None
    regions: Sequence[str] | None = None


def known_tenants(settings: Settings) -> list[str] | None:
    """Tenant ids in the state database, or None when it cannot be read (then nothing is
    claimed about the tenant)."""
    from drivetrain.cloud.infra import list_tenants, open_database
    from drivetrain.core.errors import DrivetrainError

    if not settings.database_url and not (settings.data_dir / "state.db").is_file():
        return None
    try:
        database = open_database(settings)
    except DrivetrainError:
        return None
    try:
        with database.session() as session:
            return [t.tenant_id for t in list_tenants(session)]
    except DrivetrainError:
        return None
    finally:
        database.dispose()


def refuse_unknown_tenant(settings: Settings, lake: Lake, tenant: str) -> None:
    """Exit 1 when ``tenant`` is in neither the state database nor the lake."""
    tenants = known_tenants(settings)
    if tenants is None or tenant in tenants:
        return
    if lake.files(tenant):
        return  # data of a tenant since deleted from the registry: still readable
    listed = ", ".join(tenants) or "none yet"
    fail(f"tenant {tenant!r} does not exist (tenants: {listed}); pick one with --tenant")


def explain_empty(settings: Settings, lake: Lake, asked: EmptyQuery) -> list[str]:
    """The likely causes of an empty answer to ``asked``, most specific first (exits 1 for
    an unknown tenant)."""
    refuse_unknown_tenant(settings, lake, asked.tenant)
    everywhere = lake.files(asked.tenant)
    if not everywhere:
        return [(f"tenant {asked.tenant!r} has no telemetry stored in any region yet; "
                "`drivetrain sim fleet` or an ingest worker puts some there")]
    files = everywhere if asked.regions is None else lake.files(asked.tenant,
                                                                  regions=asked.regions)
    if not files:
        held = sorted({f.region for f in everywhere})
        return [(f"tenant {asked.tenant!r} has no telemetry in {', '.join(asked.regions or [])}; "
                f"its data is in {', '.join(held)}")]
    hints = _path_hints(asked, files)
    if asked.start is not None and asked.end is not None:
        first = min(f.min_ts_ns for f in files)
        last = max(f.max_ts_ns for f in files)
        start_ns = int(asked.start.timestamp() * 1e9)
        end_ns = int(asked.end.timestamp() * 1e9)
        if last < start_ns or first >= end_ns:
            hints.append(
                f"the time range {iso_from_ns(start_ns)} .. {iso_from_ns(end_ns)} misses the "
                f"tenant's data, which spans {iso_from_ns(first)} .. {iso_from_ns(last)}; "
                "widen --start/--end"
            )
    if not hints and (asked.vehicles or asked.vins):
        named = [*asked.vins, *asked.vehicles]
        hints.append(f"no samples of {', '.join(named)} match; `drivetrain fleet list` "
                     "shows the tenant's vehicles")
    if hints:
        return hints
    if asked.start is None and not asked.paths:
        return [(f"tenant {asked.tenant!r} has {sum(f.rows for f in files):,} samples stored; "
                "the query selects none of them")]
    return ["nothing matches these filters"]


def _path_hints(asked: EmptyQuery, files: Sequence[LakeFile]) -> list[str]:
    from drivetrain.cloud.privacy import DEFAULT_CONSENT
    from drivetrain.core.errors import UnknownSignalError
    from drivetrain.core.vss import builtin_catalog

    catalog = builtin_catalog()
    stored: dict[str, int] = {}
    for f in files:
        for category, rows in f.categories.items():
            stored[category] = stored.get(category, 0) + rows
    hints = []
    for path in asked.paths:
        try:
            spec = catalog.get(path)
        except UnknownSignalError as e:
            hints.append(f"{e}")
            continue
        category = spec.privacy_category
        if stored.get(category, 0) == 0:
            default = ",".join(sorted(DEFAULT_CONSENT))
            hints.append(
                f"{path} is {category} data, and no {category} sample is stored for tenant "
                f"{asked.tenant!r}: ingestion drops a category the vehicle's consent does not "
                f"cover (the default consent allows {default} only). Grant it per vehicle with "
                f"`drivetrain privacy consent set VIN --allow {default},{category}` (for data "
                f"sent afterwards), or simulate with `drivetrain sim fleet --consent all`; "
                "`drivetrain ingest stats` counts what was dropped"
            )
    return hints
