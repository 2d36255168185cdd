"""What ingestion keeps of a known vehicle in its region store, not in the state database.

A dead letter's payload (raw telemetry, with the location it carried), its detail and its
replay outcome (both quote refused values), and a vehicle event's data object (positions,
trips, cabin readings) are personal data of the vehicle's region. For a vehicle the registry
knows they are written to ``ingest_dead_letter_contents`` / ``ingest_vehicle_event_data`` in
its region's store (``drivetrain.cloud.infra.region_stores``); the state database keeps the
row that lists them (ids, VIN, reason or type, times, sizes, status) with those columns
empty and the region named. Reads merge them back by ``dedup_key`` / (batch id, position).

Dead letters of senders the registry does not know have no region: they stay whole in the
state database (their bytes are not attributable to a vehicle of any region).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from drivetrain.cloud.fleet import get_vehicles
from drivetrain.cloud.infra.region_rows import VIN_CHUNK, insert_missing, insert_new, move_stranded
from drivetrain.cloud.infra.region_stores import check_residency, region_session
from drivetrain.cloud.ingest.models import (
    DEAD_LETTER_CONTENTS,
    EVENT_DATA,
    DeadLetterContentRow,
    DeadLetterRow,
    EventDataRow,
    VehicleEventRow,
)

_Listed = TypeVar("_Listed", DeadLetterRow, VehicleEventRow)


@dataclass(frozen=True, slots=True)
class DeadLetterContent:
    """What a dead letter holds of its vehicle."""

    detail: str
    payload: bytes
    replay_outcome: str | None


def vehicle_regions(session: Session, vins: Iterable[str]) -> dict[str, str]:
    """The region of each registered vehicle among ``vins`` (others are absent)."""
    return {vin: v.region for vin, v in get_vehicles(session, vins).items()}


def write_dead_letter_contents(
    session: Session, contents: Sequence[Mapping[str, Any]], regions: Mapping[str, str]
) -> None:
    """Write dead-letter content rows (``DeadLetterContentRow`` columns) each to its vehicle's
    region store (``regions``: VIN → region).

    Raises:
        ResidencyError: a store would receive a row of another region.
    """
    by_region: dict[str, list[Mapping[str, Any]]] = {}
    for row in contents:
        by_region.setdefault(regions[row["vin"]], []).append(row)
    for region, rows in sorted(by_region.items()):
        store = region_session(session, region)
        check_residency(store, [region])
        insert_new(store, DEAD_LETTER_CONTENTS, rows)


def dead_letter_contents(
    session: Session, rows: Iterable[DeadLetterRow]
) -> dict[str, DeadLetterContent]:
    """The content of each of ``rows`` by ``dedup_key``: from its region store where the row
    names a region, else the row's own columns."""
    found: dict[str, DeadLetterContent] = {}
    by_region: dict[str, list[str]] = {}
    for row in rows:
        if row.region is None:
            found[row.dedup_key] = DeadLetterContent(
                row.detail, bytes(row.payload), row.replay_outcome
            )
        else:
            by_region.setdefault(row.region, []).append(row.dedup_key)
    for region, keys in sorted(by_region.items()):
        store = region_session(session, region)
        for start in range(0, len(keys), VIN_CHUNK):
            query = select(DeadLetterContentRow).where(
                DeadLetterContentRow.dedup_key.in_(keys[start : start + VIN_CHUNK])
            )
            for content in store.scalars(query):
                found[content.dedup_key] = DeadLetterContent(
                    content.detail, bytes(content.payload), content.replay_outcome
                )
    return found


def record_replay(
    session: Session, row: DeadLetterRow, *, detail: str | None, replay_outcome: str
) -> None:
    """Store a replay's outcome (and, when still refused, the new ``detail``) where the dead
    letter's content lives."""
    if row.region is None:
        row.replay_outcome = replay_outcome
        if detail is not None:
            row.detail = detail
        return
    values: dict[str, Any] = {"replay_outcome": replay_outcome}
    if detail is not None:
        values["detail"] = detail
    region_session(session, row.region).execute(
        update(DeadLetterContentRow)
        .where(DeadLetterContentRow.dedup_key == row.dedup_key)
        .values(**values)
    )


def write_event_data(
    session: Session, region: str, vin: str, batch_id: str, data: Sequence[tuple[int, str]]
) -> None:
    """Write the data objects (position, canonical JSON) of one batch's events to the
    store of ``region`` (the vehicle's); a retried batch's are already there.

    Raises:
        ResidencyError: the store serves another region.
    """
    if not data:
        return
    store = region_session(session, region)
    check_residency(store, [region])
    insert_new(
        store,
        EVENT_DATA,
        [{"batch_id": batch_id, "position": p, "vin": vin, "data": d} for p, d in data],
    )


def event_data(session: Session, rows: Iterable[VehicleEventRow]) -> dict[tuple[str, int], str]:
    """The data (canonical JSON) of each of ``rows`` by (batch id, position)."""
    found: dict[tuple[str, int], str] = {}
    by_region: dict[str, list[tuple[str, int]]] = {}
    for row in rows:
        if row.region is None:
            found[(row.batch_id, row.position)] = row.data
        else:
            by_region.setdefault(row.region, []).append((row.batch_id, row.position))
    for region, keys in sorted(by_region.items()):
        store = region_session(session, region)
        batches = sorted({b for b, _ in keys})
        wanted = set(keys)
        for start in range(0, len(batches), VIN_CHUNK):
            query = select(EventDataRow).where(
                EventDataRow.batch_id.in_(batches[start : start + VIN_CHUNK])
            )
            for item in store.scalars(query):
                if (item.batch_id, item.position) in wanted:
                    found[(item.batch_id, item.position)] = item.data
    return found


def relocate_ingest(session: Session) -> int:
    """Move what the state database still holds of known vehicles' dead letters and events to
    their region stores; how many rows moved. Run by every ``drivetrain db upgrade``:

    - rows written before contents were kept per region (``region`` null, vehicle known):
      their content goes to the region store and the row names the region;
    - content rows in the state database's own tables of a region that has a store of its
      own now (a URL named in ``state_region_urls`` since).
    """
    moved = _relocate_dead_letters(session) + _relocate_events(session)
    for table, parent, key in (
        (DEAD_LETTER_CONTENTS, DeadLetterRow, "dedup_key"),
        (EVENT_DATA, VehicleEventRow, "batch_id"),
    ):
        moved += move_stranded(session, table, key, parent)
    return moved


def _unplaced(
    session: Session, model: type[_Listed], key: InstrumentedAttribute[int], *conditions: Any
) -> Iterator[tuple[list[_Listed], dict[str, str]]]:
    """Pages of ``model`` rows naming no region yet (by ``key``), each with the regions of
    those of its vehicles that are registered."""
    after = 0
    while True:
        page = list(
            session.scalars(
                select(model)
                .where(model.region.is_(None), key > after, *conditions)
                .order_by(key)
                .limit(VIN_CHUNK)
            )
        )
        if not page:
            return
        after = getattr(page[-1], key.key)
        yield page, vehicle_regions(session, {r.vin for r in page})


def _relocate_dead_letters(session: Session) -> int:
    moved = 0
    key = DeadLetterRow.dead_letter_id
    for page, regions in _unplaced(
        session, DeadLetterRow, key, DeadLetterRow.tenant_id.is_not(None)
    ):
        known = [r for r in page if r.vin in regions]
        contents = [
            {
                "dedup_key": r.dedup_key,
                "vin": r.vin,
                "detail": r.detail,
                "payload": bytes(r.payload),
                "replay_outcome": r.replay_outcome,
            }
            for r in known
        ]
        write_dead_letter_contents(session, contents, regions)
        for r in known:
            r.region, r.detail, r.payload, r.replay_outcome = regions[r.vin], "", b"", None
        session.flush()
        moved += len(known)
    return moved


def _relocate_events(session: Session) -> int:
    moved = 0
    for page, regions in _unplaced(session, VehicleEventRow, VehicleEventRow.event_id):
        known = [r for r in page if r.vin in regions]
        data = [
            {"batch_id": r.batch_id, "position": r.position, "vin": r.vin, "data": r.data}
            for r in known
        ]
        insert_missing(session, EVENT_DATA, data, regions)
        for r in known:
            r.region, r.data = regions[r.vin], ""
        session.flush()
        moved += len(known)
    return moved
