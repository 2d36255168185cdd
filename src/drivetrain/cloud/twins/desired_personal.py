"""Desired values of personal paths, kept in the vehicle's region store.

A desired item on a personal path (location, driving behaviour, cabin:
``personal.is_personal_path``) keeps its item in ``twin_desired`` — version, status, expiry,
who set it, the value's kind — with ``num`` and ``text`` empty; the value itself is written to
``twin_desired_personal`` in the store of the vehicle's region. The reconciler decides from
the item alone (pending, expired, failed); the value is read back from the store where it is
needed: a twin's items (and so the delta published to the vehicle), convergence against the
reported values, a fleet query's predicates on it, access archives, export and erasure.

The same goes for the vehicle's words when it rejects a desired message (``REJECTED_PREFIX``
and its detail, which may quote a personal value of any item the message carried): on every
item of the message they are written to ``twin_desired_reasons`` and the item's ``reason``
says ``REJECTED_IN_REGION``; reads of the items put them back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from drivetrain.cloud.infra.region_stores import check_residency, region_session
from drivetrain.cloud.twins.models import DESIRED, DESIRED_REASONS, PERSONAL_DESIRED
from drivetrain.cloud.twins.personal import is_personal_path, stranded_chunks, vehicle_regions
from drivetrain.cloud.twins.registry import IN_CHUNK, dialect_insert

#: (vin, path, kind, num, text) of one value.
DesiredValue = tuple[str, str, str, float | None, str | None]
#: What an audit entry or a change notice says in place of a personal desired value.
KEPT_IN_REGION = "kept in the vehicle's region store"
#: How a reason the vehicle gave begins (its own words follow, which may quote a value).
REJECTED_PREFIX = "rejected by the vehicle: "
#: The reason an item on a personal path keeps in ``twin_desired`` when the vehicle rejected
#: it: its words are in ``twin_desired_reasons`` of its region store.
REJECTED_IN_REGION = REJECTED_PREFIX + KEPT_IN_REGION


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
    """Delete ``vin``'s stored values of the personal ``paths`` and its rejection reasons of
    any of ``paths`` (items removed)."""
    removed = sorted(set(paths))
    personal = [p for p in removed if is_personal_path(p)]
    if not removed:
        return
    for store, vins in _by_store(session, [vin]):
        for table, chosen in ((PERSONAL_DESIRED, personal), (DESIRED_REASONS, removed)):
            if chosen:
                store.execute(
                    delete(table).where(table.c.vin.in_(vins), table.c.path.in_(chosen))
                )


def keep_reasons(
    session: Session, vin: str, reasons: Mapping[str, str | None]
) -> dict[str, str | None]:
    """The reason each item of ``vin`` (by path) keeps in ``twin_desired``: a reason the
    vehicle gave (its words, about the whole message: they may quote a personal value even
    for an item on another path) is written to its region store and the item says
    ``REJECTED_IN_REGION``; the platform's own reasons (expired, not delivered) are kept.

    Raises:
        ResidencyError: a store that serves another region.
    """
    kept = dict(reasons)
    moving = {
        path: reason for path, reason in reasons.items()
        if reason is not None and reason.startswith(REJECTED_PREFIX)
        and reason != REJECTED_IN_REGION
    }
    if not moving:
        return kept
    table = DESIRED_REASONS.c
    for store, vins in _by_store(session, [vin]):
        check_residency(store, vehicle_regions(session, vins).values())
        statement = dialect_insert(store, DESIRED_REASONS)
        statement = statement.on_conflict_do_update(
            index_elements=[table.vin, table.path], set_={"reason": statement.excluded.reason}
        )
        store.connection().execute(
            statement, [{"vin": vin, "path": p, "reason": r} for p, r in sorted(moving.items())]
        )
    kept.update(dict.fromkeys(moving, REJECTED_IN_REGION))
    return kept


def desired_reasons(session: Session, vin: str, paths: Iterable[str]) -> dict[str, str]:
    """The reasons ``vin`` gave for rejecting its items on ``paths``, from its region store."""
    wanted = sorted(set(paths))
    table = DESIRED_REASONS.c
    found: dict[str, str] = {}
    for store, vins in _by_store(session, [vin]):
        query = select(table.path, table.reason).where(
            table.vin.in_(vins), table.path.in_(wanted)
        )
        found.update({path: reason for path, reason in store.execute(query)})
    return found


def rejection_reasons(
    session: Session, items: Mapping[str, Iterable[str]]
) -> dict[tuple[str, str], str]:
    """The reasons vehicles gave for rejecting their items, ``items`` being VIN -> paths:
    (VIN, path) -> reason, read from each region store once per chunk of its VINs."""
    wanted = {vin: set(paths) for vin, paths in items.items()}
    table = DESIRED_REASONS.c
    found: dict[tuple[str, str], str] = {}
    for store, vins in _by_store(session, wanted):
        for start in range(0, len(vins), IN_CHUNK):
            query = select(table.vin, table.path, table.reason).where(
                table.vin.in_(vins[start : start + IN_CHUNK])
            )
            found.update({(vin, path): reason for vin, path, reason in store.execute(query)
                          if path in wanted[vin]})
    return found


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
    - the vehicle's reasons for rejecting items, in ``twin_desired`` (the item then
      says ``REJECTED_IN_REGION``);
    - values and reasons in the state database's own ``twin_desired_personal`` and
      ``twin_desired_reasons`` of a region that has a store of its own now (a URL
      named in ``state_region_urls`` since).
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
    moved += _relocate_reasons(session)
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


def _relocate_reasons(session: Session) -> int:
    moved = 0
    desired = DESIRED.c
    rejected = (desired.reason.startswith(REJECTED_PREFIX), desired.reason != REJECTED_IN_REGION)
    found: dict[str, dict[str, str | None]] = {}
    for vin, path, reason in session.execute(
        select(desired.vin, desired.path, desired.reason).where(*rejected)
    ):
        found.setdefault(vin, {})[path] = reason
    for vin, reasons in sorted(found.items()):
        for path, reason in keep_reasons(session, vin, reasons).items():
            session.execute(
                update(DESIRED).where(desired.vin == vin, desired.path == path).values(
                    reason=reason
                )
            )
        moved += len(reasons)
    table = DESIRED_REASONS
    for chunk in stranded_chunks(session, table):
        rows = [dict(r._mapping) for r in session.execute(select(table).where(chunk))]
        by_vin: dict[str, dict[str, str | None]] = {}
        for row in rows:
            by_vin.setdefault(row["vin"], {})[row["path"]] = row["reason"]
        session.execute(delete(table).where(chunk))
        for vin, reasons in sorted(by_vin.items()):
            keep_reasons(session, vin, reasons)
        moved += len(rows)
    return moved
