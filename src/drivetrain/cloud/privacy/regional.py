"""What the privacy domain keeps of a registered vehicle in its region store.

A vehicle's consent (which categories its data may be stored for, and where that came from),
the personal part of each ledger grant (the categories consented to, who consented, the
source), of each Data Act grant (the containers shared, the owner's client that shared them)
and of each Data Act access (who read what, how much, and why it was refused) are personal
data of the vehicle's region. For a vehicle the registry knows they are written to a content
table (:data:`SPLITS`) in its region's store (``drivetrain.cloud.infra.region_stores``); the
state database keeps the row that lists them (VIN, tenant, times; a ledger grant's purpose and
recipient, which reads select by; an access's outcome) with those columns empty and the
region named. Reads merge them back by the row's key. Owner bindings (which owner account
holds which vehicle) are kept whole in the region store (``drivetrain.cloud.privacy.owners``).

Rows of a VIN the registry does not know have no region: they stay whole in the state
database (``region`` null), as does a row written before these were kept per region until
the next ``drivetrain db upgrade`` moves it (:func:`relocate_privacy`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import get_vehicles
from drivetrain.cloud.infra.region_rows import VIN_CHUNK, insert_missing, move_stranded
from drivetrain.cloud.infra.region_stores import check_residency, region_session
from drivetrain.cloud.privacy.models import (
    OWNERS,
    ConsentContentRow,
    ConsentRow,
    DataActAccessContentRow,
    DataActAccessRow,
    DataActGrantContentRow,
    DataActGrantRow,
    PurposeGrantContentRow,
    PurposeGrantRow,
)


@dataclass(frozen=True, slots=True)
class Split:
    """A listing table of the state database and the content table of its personal part."""

    listing: Any
    content: Any
    #: The key both tables share.
    key: str
    #: The content's columns, each with the value the listing row holds in its place.
    emptied: Mapping[str, object]


SPLITS: Final = (
    Split(ConsentRow, ConsentContentRow, "vin", {"categories": "", "source": ""}),
    Split(PurposeGrantRow, PurposeGrantContentRow, "grant_id",
          {"categories": "", "person": "", "source": ""}),
    Split(DataActGrantRow, DataActGrantContentRow, "grant_id",
          {"containers": "", "granted_by": ""}),
    Split(DataActAccessRow, DataActAccessContentRow, "access_id",
          {"client_id": "", "party": "", "grant_id": None, "action": "", "containers": "",
           "value_count": 0, "byte_count": 0, "error": None}),
)


def _split_of(model: type[Any]) -> Split:
    return next(s for s in SPLITS if s.listing is model)


def vehicle_regions(session: Session, vins: Iterable[str]) -> dict[str, str]:
    """The region of each registered vehicle among ``vins`` (others are absent)."""
    return {vin: v.region for vin, v in get_vehicles(session, vins).items()}


def audit_vehicle(session: Session, vin: str) -> tuple[str, str] | None:
    """``record_audit``'s ``vehicle`` for an entry about ``vin``: (VIN, region) of a
    registered vehicle, whose entry keeps its personal part in the region store; None for a
    VIN the registry does not know (the entry stays whole in the state database)."""
    region = vehicle_regions(session, [vin]).get(vin)
    return None if region is None else (vin, region)


def place(session: Session, row: Any, content: Mapping[str, object],
          region: str | None = None) -> None:
    """Keep ``content`` (values of the content columns) of the flushed listing ``row`` in its
    vehicle's region store (the row then names the region and holds those columns empty), or
    in the row itself for a VIN the registry does not know. ``region``: the vehicle's, when
    the caller knows it.

    Raises:
        ResidencyError: the store serves another region.
    """
    split = _split_of(type(row))
    region = region or vehicle_regions(session, [row.vin]).get(row.vin)
    if region is None:
        for column, value in content.items():
            setattr(row, column, value)
        row.region = None
        return
    store = region_session(session, region)
    check_residency(store, [region])
    store.merge(split.content(**{"vin": row.vin, split.key: getattr(row, split.key), **content}))
    store.flush()
    for column, value in split.emptied.items():
        setattr(row, column, value)
    row.region = region.upper()


def contents(session: Session, rows: Iterable[Any]) -> dict[Any, dict[str, Any]]:
    """The content columns of each listing row of ``rows`` (all of one table) by its key:
    from its region store where the row names a region, else the row's own columns. A row
    whose content is missing from its store is absent from the answer."""
    found: dict[Any, dict[str, Any]] = {}
    by_region: dict[str, list[Any]] = {}
    split: Split | None = None
    for row in rows:
        split = split or _split_of(type(row))
        key = getattr(row, split.key)
        if row.region is None:
            found[key] = {c: getattr(row, c) for c in split.emptied}
        else:
            by_region.setdefault(row.region, []).append(key)
    if split is None:
        return found
    column = getattr(split.content, split.key)
    for region, keys in sorted(by_region.items()):
        store = region_session(session, region)
        for start in range(0, len(keys), VIN_CHUNK):
            query = select(split.content).where(column.in_(keys[start : start + VIN_CHUNK]))
            for item in store.scalars(query):
                found[getattr(item, split.key)] = {c: getattr(item, c) for c in split.emptied}
    return found


def consent_categories(session: Session, vins: Mapping[str, list[str]]) -> dict[str, str]:
    """The stored categories (space-separated) of the consent of each VIN of ``vins`` (region
    → VINs whose consent row names it), from the region stores: one query per store and 500
    VINs."""
    found: dict[str, str] = {}
    table = ConsentContentRow
    for region, chosen in sorted(vins.items()):
        store = region_session(session, region)
        for start in range(0, len(chosen), VIN_CHUNK):
            query = select(table.vin, table.categories).where(
                table.vin.in_(chosen[start : start + VIN_CHUNK]))
            found.update({vin: categories for vin, categories in store.execute(query)})
    return found


def relocate_privacy(session: Session) -> int:
    """Move what the state database still holds of registered vehicles' consent, ledger
    grants, Data Act grants and accesses to their region stores; how many rows moved. Run
    by every ``drivetrain db upgrade``:

    - rows written before they were kept per region (``region`` null, vehicle registered
      now): their content goes to the region store and the row names the region;
    - content rows in the state database's own tables of a region that has a store of its
      own now (a URL named in ``state_region_urls`` since).
    """
    moved = 0
    for split in SPLITS:
        key = getattr(split.listing, split.key)
        after: Any = None
        while True:
            query = select(split.listing).where(split.listing.region.is_(None))
            if after is not None:
                query = query.where(key > after)
            page = list(session.scalars(query.order_by(key).limit(VIN_CHUNK)))
            if not page:
                break
            after = getattr(page[-1], split.key)
            known = vehicle_regions(session, {r.vin for r in page})
            for row in (r for r in page if r.vin in known):
                place(session, row, {c: getattr(row, c) for c in split.emptied}, known[row.vin])
                moved += 1
            session.flush()
        moved += move_stranded(session, split.content.__table__, split.key, split.listing)
    return moved + _relocate_owners(session)


def _relocate_owners(session: Session) -> int:
    """Move the owner bindings the state database holds of vehicles whose region has a
    store of its own (written before they were kept per region, or before the URL was
    named) there; how many moved."""
    table = OWNERS
    vins = sorted(session.scalars(select(table.c.vin).distinct()))
    moved = 0
    for start in range(0, len(vins), VIN_CHUNK):
        regions = vehicle_regions(session, vins[start : start + VIN_CHUNK])
        away = {v: r for v, r in regions.items() if region_session(session, r) is not session}
        if not away:
            continue
        chosen = table.c.vin.in_(sorted(away))
        rows = [dict(r._mapping) for r in session.execute(select(table).where(chosen))]
        insert_missing(session, table, rows, away)
        session.execute(delete(table).where(chosen))
        moved += len(rows)
    return moved
