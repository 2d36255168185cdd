"""Rows of a regional table by VIN across the region stores: what access archives, erasure,
import and ``db upgrade`` do with any table registered with
:func:`~drivetrain.cloud.infra.region_stores.register_regional_table` (each has a ``vin``).

Which region a VIN belongs to is the caller's to say (the registry lives in another domain).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Table, delete, insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from drivetrain.cloud.infra.region_stores import (
    check_residency,
    every_store_session,
    region_session,
)

#: VINs per ``IN (...)`` query, well under every engine's parameter limit.
VIN_CHUNK: Final = 500


def _by_region(regions: Mapping[str, str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for vin, region in sorted(regions.items()):
        grouped.setdefault(region.upper(), []).append(vin)
    return grouped


def rows_of(session: Session, table: Table, regions: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every row of ``table`` naming one of the VINs of ``regions`` (VIN → region), each read
    from its vehicle's region store, ordered by VIN then primary key."""
    found: list[dict[str, Any]] = []
    order = [table.c.vin, *table.primary_key.columns]
    for region, vins in _by_region(regions).items():
        store = region_session(session, region)
        for start in range(0, len(vins), VIN_CHUNK):
            query = (
                select(table)
                .where(table.c.vin.in_(vins[start : start + VIN_CHUNK]))
                .order_by(*order)
            )
            found += [dict(r._mapping) for r in store.execute(query)]
    return found


def erase_everywhere(session: Session, table: Table, vins: Collection[str]) -> int:
    """Delete every row of ``table`` naming one of ``vins`` in every store (the state
    database's and each known region's: a row is gone even if its vehicle moved); how many."""
    wanted = sorted(vins)
    deleted = 0
    for store in every_store_session(session):
        for start in range(0, len(wanted), VIN_CHUNK):
            result = store.execute(
                table.delete().where(table.c.vin.in_(wanted[start : start + VIN_CHUNK]))
            )
            deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted


def insert_missing(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], regions: Mapping[str, str]
) -> tuple[int, int]:
    """Insert each of ``rows`` into its vehicle's region store (``regions``: VIN → region)
    unless a row with its primary key is there; (inserted, already there).

    Raises:
        ResidencyError: a store would receive a row of another region.
        KeyError: a row's VIN is not in ``regions``.
    """
    keys = list(table.primary_key.columns)
    inserted = there = 0
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(regions[row["vin"]].upper(), []).append(row)
    for region, group in sorted(grouped.items()):
        store = region_session(session, region)
        check_residency(store, {regions[r["vin"]] for r in group})
        for start in range(0, len(group), VIN_CHUNK):
            chunk = group[start : start + VIN_CHUNK]
            wanted = [tuple(r[c.name] for c in keys) for r in chunk]
            condition = (
                keys[0].in_([k[0] for k in wanted]) if len(keys) == 1 else tuple_(*keys).in_(wanted)
            )
            existing = {tuple(r) for r in store.execute(select(*keys).where(condition))}
            fresh = [dict(r) for r, k in zip(chunk, wanted, strict=True) if k not in existing]
            if fresh:
                store.execute(insert(table), fresh)
            inserted, there = inserted + len(fresh), there + len(chunk) - len(fresh)
    return inserted, there


def insert_new(store: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` into ``store`` in one statement, skipping those whose primary key is
    there (``INSERT … ON CONFLICT DO NOTHING``): a retried write is harmless. The caller has
    checked residency.
    """
    if not rows:
        return
    dialect = postgresql if store.get_bind().dialect.name == "postgresql" else sqlite
    store.execute(dialect.insert(table).on_conflict_do_nothing(), list(rows))


def move_stranded(session: Session, table: Table, key: str, parent: Any) -> int:
    """Move the rows of the state database's own copy of regional ``table`` whose listing row
    (``parent``: a model with a ``region`` column and the column ``key`` that ``table`` shares)
    names a region that has a store of its own now (a URL named since); how many moved."""
    moved = 0
    named = select(parent.region).where(parent.region.is_not(None)).distinct()
    for region in sorted(r for r in session.scalars(named) if r is not None):
        if region_session(session, region) is session:
            continue  # the region's store is the state database itself
        listed = select(getattr(parent, key)).where(parent.region == region)
        vins = sorted(
            session.scalars(select(table.c.vin).distinct().where(table.c[key].in_(listed)))
        )
        for start in range(0, len(vins), VIN_CHUNK):
            chunk = table.c.vin.in_(vins[start : start + VIN_CHUNK])
            rows = [dict(r._mapping) for r in session.execute(select(table).where(chunk))]
            insert_missing(session, table, rows, dict.fromkeys(vins, region))
            session.execute(delete(table).where(chunk))
            moved += len(rows)
    return moved
