"""Reported values of personal paths, kept in the vehicle's region store.

A reported value whose path is of a personal category (location, driving behaviour, cabin:
``drivetrain.core.vss.privacy``) is written to ``twin_reported_personal`` in the store of the
vehicle's region (``drivetrain.cloud.infra.region_stores``), never to ``twin_reported`` in
the state database. Reads merge them back: a twin's values, a fleet query's predicates on
such a path, convergence of desired items on them, access archives and erasure.

Convergence cannot join the two stores in SQL, so for personal paths it is decided here, in
Python, for the pending items of the vehicles concerned (few: most reported batches leave no
item pending).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, literal, or_, select, update
from sqlalchemy.orm import Session

from drivetrain.cloud.infra.region_stores import (
    check_residency,
    iter_region_sessions,
    region_session,
)
from drivetrain.cloud.twins.models import (
    DESIRED,
    PERSONAL_REPORTED,
    REPORTED,
    PersonalReportedRow,
    TwinRow,
)
from drivetrain.cloud.twins.registry import IN_CHUNK, twin_homes
from drivetrain.cloud.twins.upsert import Row, upsert_count, upsert_rows
from drivetrain.cloud.twins.values import decode_value, values_equal
from drivetrain.core.vss.privacy import PERSONAL_CATEGORIES, privacy_category_for


@lru_cache(maxsize=65536)
@lru_cache(maxsize=8192)
def is_personal_path(path: str) -> bool:
    """Whether ``path``'s values are personal data (kept per region); asked for every
    reported value of every micro-batch, of paths the catalog bounds, so remembered."""
    return privacy_category_for(path) in PERSONAL_CATEGORIES


def split_personal(rows: Sequence[Row]) -> tuple[list[Row], list[Row]]:
    """(rows for ``twin_reported``, rows of personal paths)."""
    shared: list[Row] = []
    personal: list[Row] = []
    # Judged once per distinct path of the batch (a batch holds few paths, many rows).
    personal_paths = {path for path in {row[1] for row in rows} if is_personal_path(path)}
    if not personal_paths:
        return list(rows), personal
    for row in rows:
        (personal if row[1] in personal_paths else shared).append(row)
    return shared, personal


def vehicle_regions(session: Session, vins: Iterable[str]) -> dict[str, str]:
    """The region of each twin of ``vins`` (from the state database)."""
    return {vin: region for vin, (_tenant, region) in twin_homes(session, vins).items()}


def write_region_rows(
    store: Session, rows: list[Row], regions: Mapping[str, str]
) -> list[tuple[str, str]]:
    """Upsert personal ``rows`` into one region ``store``, newer-wins; (vin, path) changed.

    Raises:
        ResidencyError: a row's vehicle (``regions``: VIN → region) is of another region.
    """
    check_residency(store, {regions[row[0]] for row in rows})
    return upsert_rows(store, rows, PERSONAL_REPORTED)


def write_personal(
    session: Session, rows: list[Row], regions: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """Write personal ``rows`` (twins existing) each to its vehicle's region store, one
    upsert per store (regions without a store of their own share the state database's);
    ``regions`` (VIN → region) when the caller knows them already."""
    if regions is None:
        regions = vehicle_regions(session, {row[0] for row in rows})
    changed: list[tuple[str, str]] = []
    for store, group in _by_store(session, rows, regions):
        changed += write_region_rows(store, group, regions)
    return changed


def count_personal(session: Session, rows: list[Row], regions: Mapping[str, str]) -> int:
    """:func:`write_personal` that returns only how many values changed (no ``RETURNING``)."""
    count = 0
    for store, group in _by_store(session, rows, regions):
        check_residency(store, {regions[row[0]] for row in group})
        count += upsert_count(store, group, PERSONAL_REPORTED)
    return count


def _by_store(
    session: Session, rows: list[Row], regions: Mapping[str, str]
) -> list[tuple[Session, list[Row]]]:
    """``rows`` grouped by the region store each belongs in (``regions``: VIN → region)."""
    stores: dict[int, tuple[Session, list[Row]]] = {}
    store_of: dict[str, list[Row]] = {}  # region → its store's rows (one look-up per region)
    for region in sorted({regions[row[0]] for row in rows}):
        store = region_session(session, region)
        store_of[region] = stores.setdefault(id(store), (store, []))[1]
    for row in rows:
        store_of[regions[row[0]]].append(row)
    return list(stores.values())


def personal_values(
    session: Session, vin: str, region: str, paths: Iterable[str] | None = None
) -> list[PersonalReportedRow]:
    """``vin``'s stored personal rows (only ``paths`` when given), by path."""
    query = select(PersonalReportedRow).where(PersonalReportedRow.vin == vin)
    if paths is not None:
        query = query.where(PersonalReportedRow.path.in_(list(paths)))
    store = region_session(session, region)
    return list(store.scalars(query.order_by(PersonalReportedRow.path)))


def converge_personal(
    session: Session, vins: Sequence[str], now: datetime, paths: Collection[str] | None = None
) -> list[tuple[str, str, datetime]]:
    """Mark converged the pending, unexpired items on personal paths of ``vins`` (only
    ``paths`` when given) that the region stores' values satisfy; (vin, path, set_at) each."""
    desired = DESIRED.c
    unexpired = or_(desired.expires_at.is_(None), desired.expires_at > now)
    pending: list[Any] = []
    for start in range(0, len(vins), IN_CHUNK):
        conditions = [
            desired.status == "pending",
            unexpired,
            desired.vin.in_(vins[start : start + IN_CHUNK]),
        ]
        if paths is not None:
            conditions.append(desired.path.in_(sorted(paths)))
        pending += [
            row
            for row in session.execute(
                select(
                    desired.vin,
                    desired.path,
                    desired.kind,
                    desired.num,
                    desired.text,
                    desired.set_at,
                ).where(*conditions)
            )
            if is_personal_path(row.path)
        ]
    if not pending:
        return []
    regions = vehicle_regions(session, {row.vin for row in pending})
    stored: dict[tuple[str, str], Any] = {}
    for vin in sorted({row.vin for row in pending}):
        wanted = {row.path for row in pending if row.vin == vin}
        stored.update(
            {
                (vin, r.path): decode_value(r.kind, r.num, r.text)
                for r in personal_values(session, vin, regions[vin], wanted)
            }
        )
    # Their values are in the region stores too (desired_personal).
    from drivetrain.cloud.twins.desired_personal import desired_values

    wanted_values = desired_values(
        session, {row.vin for row in pending}, {row.path for row in pending}
    )
    converged = []
    for row in pending:
        kept = wanted_values.get((row.vin, row.path))
        wanted_value = decode_value(*kept) if kept else decode_value(row.kind, row.num, row.text)
        if (
            (row.vin, row.path) in stored
            and wanted_value is not None  # desired values are never empty
            and values_equal(stored[(row.vin, row.path)], wanted_value)
        ):
            converged.append((row.vin, row.path, row.set_at))
    for vin, path, _set_at in converged:
        session.execute(
            update(DESIRED)
            .where(
                desired.vin == vin,
                desired.path == path,
                desired.status == "pending",
            )
            .values(status="converged", status_at=now, reason=None)
        )
    return converged


PersonalPredicate = Callable[[str, ColumnElement[bool], Any], ColumnElement[bool]]


def personal_predicate(session: Session, tenant: str) -> PersonalPredicate:
    """For a fleet query over ``tenant``'s twins: turns a value condition on a personal
    ``path`` (over ``table``: ``PersonalReportedRow`` or ``PersonalDesiredRow``) into a
    condition over ``TwinRow``.

    Where every region's store is the state database itself, a correlated ``EXISTS`` (as for
    ``twin_reported``); otherwise the VINs each store finds, as ``twins.vin IN (...)``. The
    tenant's regions are looked up on the first personal predicate only.
    """
    stores: list[Session] = []

    def condition(
        path: str, value_condition: ColumnElement[bool], table: Any = PersonalReportedRow
    ) -> ColumnElement[bool]:
        if not stores:
            regions = session.scalars(
                select(TwinRow.region).where(TwinRow.tenant_id == tenant).distinct()
            )
            stores.extend(iter_region_sessions(session, regions))
        if all(store is session for store in stores):
            return (
                select(literal(1))
                .where(table.vin == TwinRow.vin, table.path == path, value_condition)
                .exists()
            )
        query = select(table.vin).where(table.path == path, value_condition)
        vins: set[str] = set()
        for store in stores:
            vins.update(store.scalars(query))
        return TwinRow.vin.in_(sorted(vins))

    return condition


def relocate_personal(session: Session) -> int:
    """Move personal values kept in the state database to the region stores, newer value
    winning; how many rows moved. Run by every ``drivetrain db upgrade``:

    - values in ``twin_reported`` (stored before personal values were kept per region): one
      scan of its distinct paths when nothing is left to move;
    - values in the state database's own ``twin_reported_personal`` of a region that has a
      store of its own now (a URL named in ``state_region_urls`` since).
    """
    moved = 0
    reported = REPORTED.c
    paths = [p for p in session.scalars(select(reported.path).distinct()) if is_personal_path(p)]
    for path in sorted(paths):
        rows: list[Row] = [
            tuple(r) for r in session.execute(select(REPORTED).where(reported.path == path))
        ]
        write_personal(session, rows)
        session.execute(delete(REPORTED).where(reported.path == path))
        moved += len(rows)
    for chunk in stranded_chunks(session, PERSONAL_REPORTED):
        rows = [tuple(r) for r in session.execute(select(PERSONAL_REPORTED).where(chunk))]
        write_personal(session, rows)
        session.execute(delete(PERSONAL_REPORTED).where(chunk))
        moved += len(rows)
    return moved


def stranded_chunks(session: Session, table: Table) -> Iterator[ColumnElement[bool]]:
    """Conditions (``vin IN (...)``, at most ``IN_CHUNK`` VINs each) that select the rows of
    the state database's own copy of the regional ``table`` whose vehicle's region has a
    store of its own now: the rows a relocation moves there."""
    for region in sorted(set(session.scalars(select(TwinRow.region).distinct()))):
        if region_session(session, region) is session:
            continue  # the region's store is the state database itself
        vins = list(
            session.scalars(
                select(table.c.vin)
                .distinct()
                .where(table.c.vin.in_(select(TwinRow.vin).where(TwinRow.region == region)))
            )
        )
        for start in range(0, len(vins), IN_CHUNK):
            yield table.c.vin.in_(vins[start : start + IN_CHUNK])


def personal_rows_of(session: Session, vins: Iterable[str]) -> list[dict[str, Any]]:
    """Every personal row of ``vins`` in their region stores (for an access archive)."""
    regions = vehicle_regions(session, vins)
    rows: list[dict[str, Any]] = []
    for region in sorted(set(regions.values())):
        chosen = sorted(v for v, r in regions.items() if r == region)
        store = region_session(session, region)
        for start in range(0, len(chosen), IN_CHUNK):
            query = (
                select(PERSONAL_REPORTED)
                .where(PERSONAL_REPORTED.c.vin.in_(chosen[start : start + IN_CHUNK]))
                .order_by(PERSONAL_REPORTED.c.vin, PERSONAL_REPORTED.c.path)
            )
            rows += [dict(r._mapping) for r in store.execute(query)]
    return rows


def erase_personal(session: Session, vins: Iterable[str]) -> int:
    """Delete every personal row of ``vins`` in their region stores; how many."""
    regions = vehicle_regions(session, vins)
    deleted = 0
    for region in sorted(set(regions.values())):
        chosen = sorted(v for v, r in regions.items() if r == region)
        store = region_session(session, region)
        for start in range(0, len(chosen), IN_CHUNK):
            result = store.execute(
                PERSONAL_REPORTED.delete().where(
                    PERSONAL_REPORTED.c.vin.in_(chosen[start : start + IN_CHUNK])
                )
            )
            deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted
