"""What the privacy domain keeps of a registered vehicle in its region store.

A vehicle's consent (which categories its data may be stored for, and where that came from)
and the personal part of each ledger grant (the categories consented to, who consented, the
source) are personal data of the vehicle's region. For a vehicle the registry knows they are
written to ``privacy_consent_contents`` / ``privacy_purpose_grant_contents`` in its region's
store (``drivetrain.cloud.infra.region_stores``); the state database keeps the row that lists
them (VIN, tenant, times; a grant's purpose and recipient, which reads select by) with those
columns empty and the region named. Reads merge them back by VIN / grant id.

Consent of a VIN the registry does not know has no region: it stays whole in the state
database (``region`` null), as does a row written before consent was kept per region until
the next ``drivetrain db upgrade`` moves it (:func:`relocate_privacy`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import get_vehicles
from drivetrain.cloud.infra.region_rows import VIN_CHUNK, move_stranded
from drivetrain.cloud.infra.region_stores import check_residency, region_session
from drivetrain.cloud.privacy.models import (
    CONSENT_CONTENTS,
    GRANT_CONTENTS,
    ConsentContentRow,
    ConsentRow,
    PurposeGrantContentRow,
    PurposeGrantRow,
)


@dataclass(frozen=True, slots=True)
class GrantContent:
    """The personal part of one ledger grant."""

    categories: str
    person: str
    source: str


def vehicle_regions(session: Session, vins: Iterable[str]) -> dict[str, str]:
    """The region of each registered vehicle among ``vins`` (others are absent)."""
    return {vin: v.region for vin, v in get_vehicles(session, vins).items()}


def _store(session: Session, region: str) -> Session:
    store = region_session(session, region)
    check_residency(store, [region])
    return store


def place_consent(session: Session, row: ConsentRow, categories: str, source: str) -> None:
    """Keep ``row``'s categories and source in its vehicle's region store (the row then names
    the region and holds them empty), or in the row itself for a VIN the registry does not
    know.

    Raises:
        ResidencyError: the store serves another region.
    """
    region = vehicle_regions(session, [row.vin]).get(row.vin)
    if region is None:
        row.categories, row.source, row.region = categories, source, None
        return
    store = _store(session, region)
    store.merge(ConsentContentRow(vin=row.vin, categories=categories, source=source))
    store.flush()
    row.categories, row.source, row.region = "", "", region.upper()


def consent_contents(session: Session, rows: Iterable[ConsentRow]) -> dict[str, tuple[str, str]]:
    """(categories, source) of each of ``rows`` by VIN: from its region store where the row
    names a region, else the row's own columns. A row whose content is missing from its store
    is absent from the answer."""
    found: dict[str, tuple[str, str]] = {}
    by_region: dict[str, list[str]] = {}
    for row in rows:
        if row.region is None:
            found[row.vin] = (row.categories, row.source)
        else:
            by_region.setdefault(row.region, []).append(row.vin)
    table = CONSENT_CONTENTS.c
    for region, vins in sorted(by_region.items()):
        store = region_session(session, region)
        for start in range(0, len(vins), VIN_CHUNK):
            query = select(table.vin, table.categories, table.source).where(
                table.vin.in_(vins[start : start + VIN_CHUNK])
            )
            for vin, categories, source in store.execute(query):
                found[vin] = (categories, source)
    return found


def place_grant(session: Session, row: PurposeGrantRow, content: GrantContent) -> None:
    """Keep ``content`` of the flushed grant ``row`` in its vehicle's region store (the row
    then names the region and holds those columns empty), or in the row itself for a VIN the
    registry does not know.

    Raises:
        ResidencyError: the store serves another region.
    """
    region = vehicle_regions(session, [row.vin]).get(row.vin)
    if region is None:
        row.categories, row.person, row.source = content.categories, content.person, content.source
        return
    store = _store(session, region)
    store.merge(
        PurposeGrantContentRow(
            grant_id=row.grant_id,
            vin=row.vin,
            categories=content.categories,
            person=content.person,
            source=content.source,
        )
    )
    store.flush()
    row.categories, row.person, row.source, row.region = "", "", "", region.upper()


def grant_contents(
    session: Session, rows: Iterable[PurposeGrantRow]
) -> dict[int, GrantContent]:
    """The personal part of each of ``rows`` by grant id (see :func:`consent_contents`)."""
    found: dict[int, GrantContent] = {}
    by_region: dict[str, list[int]] = {}
    for row in rows:
        if row.region is None:
            found[row.grant_id] = GrantContent(row.categories, row.person, row.source)
        else:
            by_region.setdefault(row.region, []).append(row.grant_id)
    table = GRANT_CONTENTS.c
    for region, ids in sorted(by_region.items()):
        store = region_session(session, region)
        for start in range(0, len(ids), VIN_CHUNK):
            query = select(table.grant_id, table.categories, table.person, table.source).where(
                table.grant_id.in_(ids[start : start + VIN_CHUNK])
            )
            for grant_id, categories, person, source in store.execute(query):
                found[grant_id] = GrantContent(categories, person, source)
    return found


def relocate_privacy(session: Session) -> int:
    """Move what the state database still holds of registered vehicles' consent and ledger
    grants to their region stores; how many rows moved. Run by every ``drivetrain db
    upgrade``:

    - rows written before consent was kept per region (``region`` null, vehicle registered
      now): their content goes to the region store and the row names the region;
    - content rows in the state database's own tables of a region that has a store of its
      own now (a URL named in ``state_region_urls`` since).
    """
    moved = 0
    consents = list(session.scalars(select(ConsentRow).where(ConsentRow.region.is_(None))))
    known = vehicle_regions(session, {r.vin for r in consents})
    for consent in (r for r in consents if r.vin in known):
        place_consent(session, consent, consent.categories, consent.source)
        moved += 1
    grants = list(session.scalars(
        select(PurposeGrantRow).where(PurposeGrantRow.region.is_(None))
        .order_by(PurposeGrantRow.grant_id)))
    known = vehicle_regions(session, {r.vin for r in grants})
    for grant in (r for r in grants if r.vin in known):
        place_grant(session, grant, GrantContent(grant.categories, grant.person, grant.source))
        moved += 1
    session.flush()
    moved += move_stranded(session, CONSENT_CONTENTS, "vin", ConsentRow)
    moved += move_stranded(session, GRANT_CONTENTS, "grant_id", PurposeGrantRow)
    return moved
