"""Desired values of personal paths, kept in the vehicle's region store.

A desired item on a personal path (location, driving behaviour, cabin:
``personal.is_personal_path``) keeps its item in ``twin_desired`` — version, status, expiry,
who set it, the value's kind — with ``num`` and ``text`` empty; the value itself is written to
``twin_desired_personal`` in the store of the vehicle's region. The reconciler decides from
the item alone (pending, expired, failed); the value is read back from the store where it is
needed: a twin's items (and so the delta published to the vehicle), convergence against the
reported values, a fleet query's predicates on it, access archives, export and erasure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from drivetrain.cloud.infra.region_stores import check_residency, region_session
from drivetrain.cloud.twins.models import DESIRED, PERSONAL_DESIRED
from drivetrain.cloud.twins.personal import is_personal_path, stranded_chunks, vehicle_regions
from drivetrain.cloud.twins.registry import IN_CHUNK, dialect_insert

#: (vin, path, kind, num, text) of one value.
DesiredValue = tuple[str, str, str, float | None, str | None]
#: What an audit entry or a change notice says in place of a personal desired value.
KEPT_IN_REGION = "kept in the vehicle's region store"


def _by_store(
    session: Session, vins: Iterable[str], regions: Mapping[str, str] | None = None
) -> list[tuple[Session, list[str]]]:
    """``vins`` grouped by the store of their region (one group per store)."""
    regions = regions or vehicle_regions(session, vins)
    groups: dict[int, tuple[Session, list[str]]] = {}
    for vin in sorted(regions):
        store = region_session(session, regions[vin])
        groups.setdefault(id(store), (store, []))[1].append(vin)
    return list(groups.values())


def write_desired_values(session: Session, values: Sequence[DesiredValue]) -> None:
    """Upsert personal desired ``values`` (twins existing) each into its vehicle's region
    store (the last write wins: desired state has no measurement time).

    Raises:
        ResidencyError: a store that serves another region.
    """
    if not values:
        return
    regions = vehicle_regions(session, {v[0] for v in values})
    table = PERSONAL_DESIRED.c
    for store, vins in _by_store(session, regions, regions):
        chosen = set(vins)
        check_residency(store, {regions[v] for v in vins})
        statement = dialect_insert(store, PERSONAL_DESIRED)
        statement = statement.on_conflict_do_update(
            index_elements=[table.vin, table.path],
            set_={name: getattr(statement.excluded, name) for name in ("kind", "num", "text")},
        )
        store.connection().execute(
            statement,
            [
                {"vin": vin, "path": path, "kind": kind, "num": num, "text": text}
                for vin, path, kind, num, text in values
                if vin in chosen
            ],
        )


def delete_desired_values(session: Session, vin: str, paths: Iterable[str]) -> None:
    """Delete ``vin``'s stored values of the personal ``paths`` (items removed)."""
    personal = sorted(p for p in paths if is_personal_path(p))
    if not personal:
        return
    for store, vins in _by_store(session, [vin]):
        store.execute(
            delete(PERSONAL_DESIRED).where(
                PERSONAL_DESIRED.c.vin.in_(vins), PERSONAL_DESIRED.c.path.in_(personal)
            )
        )


def desired_values(
    session: Session, vins: Iterable[str], paths: Iterable[str] | None = None
) -> dict[tuple[str, str], tuple[str, float | None, str | None]]:
    """(kind, num, text) of the stored personal desired values of ``vins`` (only ``paths``
    when given), by (vin, path)."""
    table = PERSONAL_DESIRED.c
    wanted = None if paths is None else sorted(set(paths))
    found: dict[tuple[str, str], tuple[str, float | None, str | None]] = {}
    for store, chosen in _by_store(session, vins):
        for start in range(0, len(chosen), IN_CHUNK):
            query = select(table.vin, table.path, table.kind, table.num, table.text).where(
                table.vin.in_(chosen[start : start + IN_CHUNK])
            )
            if wanted is not None:
                query = query.where(table.path.in_(wanted))
            for vin, path, kind, num, text in store.execute(query):
                found[(vin, path)] = (kind, num, text)
    return found


def relocate_personal_desired(session: Session) -> int:
    """Move desired values of personal paths kept in the state database to the region
    stores; how many moved. Run by every ``drivetrain db upgrade``:

    - values in ``twin_desired`` (written before they were kept per region): the item stays,
      its ``num`` and ``text`` are emptied;
    - values in the state database's own ``twin_desired_personal`` of a region that has a
      store of its own now (a URL named in ``state_region_urls`` since).
    """
    moved = 0
    desired = DESIRED.c
    paths = [p for p in session.scalars(select(desired.path).distinct()) if is_personal_path(p)]
    for path in sorted(paths):
        kept = desired.path == path, (desired.num.is_not(None) | desired.text.is_not(None))
        values: list[DesiredValue] = [
            (vin, p, kind, num, text)
            for vin, p, kind, num, text in session.execute(
                select(desired.vin, desired.path, desired.kind, desired.num, desired.text).where(
                    *kept
                )
            )
        ]
        write_desired_values(session, values)
        session.execute(update(DESIRED).where(*kept).values(num=None, text=None))
        moved += len(values)
    table = PERSONAL_DESIRED.c
    for chunk in stranded_chunks(session, PERSONAL_DESIRED):
        rows: list[DesiredValue] = [
            tuple(r)
            for r in session.execute(
                select(table.vin, table.path, table.kind, table.num, table.text).where(chunk)
            )
        ]
        write_desired_values(session, rows)
        session.execute(delete(PERSONAL_DESIRED).where(chunk))
        moved += len(rows)
    return moved
