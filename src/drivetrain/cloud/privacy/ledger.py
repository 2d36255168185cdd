"""The purpose-consent ledger: who consented to which purpose, for which data, until when.

A grant says: a person (``owner``, ``driver`` or ``fleet``) lets the tenant — or one third
party, named by its client id (``recipient``) — use some privacy categories of one vehicle
for one consent-based purpose, optionally until ``expires_at``. The ledger is append-only: a
grant is never edited; withdrawing it stamps ``withdrawn_at`` (as easy as giving: one call),
and giving again adds a new grant. Each change is audited (``privacy.consent.give``,
``privacy.consent.withdraw``). A registered vehicle's grants keep their personal part
(categories, person, source) in its region store (``drivetrain.cloud.privacy.regional``).
:func:`purpose_permit` turns the active grants into the
:class:`~drivetrain.cloud.privacy.purposes.ReadPermit` a read is checked against.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import get_tenant, record_audit
from drivetrain.cloud.privacy.models import PurposeGrantRow
from drivetrain.cloud.privacy.purposes import (
    PURPOSE_CATALOG,
    Purpose,
    PurposeNotAllowedError,
    ReadPermit,
    parse_purpose,
    read_permit,
    refuse_data_act_purpose,
)
from drivetrain.cloud.privacy.regional import audit_vehicle, contents, place
from drivetrain.cloud.privacy.service import parse_categories, parse_source, pseudonymiser
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.vss.privacy import PrivacyCategory

Person = Literal["owner", "driver", "fleet"]
PERSONS: Final[tuple[Person, ...]] = get_args(Person)
#: What a recipient (an OAuth2 client id) may look like.
RECIPIENT_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True, slots=True)
class Grant:
    """One ledger entry; ``active`` is decided against a moment (see :meth:`is_active`)."""

    grant_id: int
    tenant: str
    vin: str
    purpose: Purpose
    categories: frozenset[PrivacyCategory]
    person: Person
    recipient: str | None
    source: str
    given_at: datetime
    expires_at: datetime | None
    withdrawn_at: datetime | None

    def is_active(self, now: datetime) -> bool:
        """Given, not withdrawn, and not expired at ``now``."""
        return self.withdrawn_at is None and (self.expires_at is None or now < self.expires_at)

    def status(self, now: datetime) -> Literal["active", "withdrawn", "expired"]:
        """``active``, ``withdrawn`` or ``expired`` at ``now``."""
        if self.withdrawn_at is not None:
            return "withdrawn"
        return "active" if self.is_active(now) else "expired"

    def to_dict(self, now: datetime) -> dict[str, object]:
        """JSON-ready form with the status at ``now``."""
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()
        return {
            "grant_id": self.grant_id, "vin": self.vin, "purpose": self.purpose,
            "categories": sorted(self.categories), "person": self.person,
            "recipient": self.recipient, "source": self.source,
            "given_at": iso(self.given_at), "expires_at": iso(self.expires_at),
            "withdrawn_at": iso(self.withdrawn_at), "status": self.status(now),
        }


def _grant(row: PurposeGrantRow, content: dict[str, Any]) -> Grant:
    return Grant(
        grant_id=row.grant_id, tenant=row.tenant_id, vin=row.vin,
        purpose=parse_purpose(row.purpose),
        categories=parse_categories(content["categories"].split()),
        person=parse_person(content["person"]), recipient=row.recipient,
        source=content["source"],
        given_at=row.given_at, expires_at=row.expires_at, withdrawn_at=row.withdrawn_at,
    )


def _grants(session: Session, rows: Iterable[PurposeGrantRow]) -> list[Grant]:
    """``rows`` as grants, their personal part read from the region stores.

    Raises:
        NotFoundError: a grant whose personal part its region store does not have.
    """
    rows = list(rows)
    found = contents(session, rows)
    missing = [r.grant_id for r in rows if r.grant_id not in found]
    if missing:
        raise NotFoundError(f"consent grant(s) {', '.join(map(str, missing[:5]))}: their "
                            f"content is missing from the region store")
    return [_grant(r, found[r.grant_id]) for r in rows]


def parse_person(name: str) -> Person:
    """Who consents: ``owner``, ``driver`` or ``fleet``.

    Raises:
        BadInputError: any other name.
    """
    for person in PERSONS:
        if name == person:
            return person
    raise BadInputError(f"person {name!r} is not known; expected one of {', '.join(PERSONS)}")


def parse_recipient(recipient: str | None) -> str | None:
    """A third party's client id, or None for the tenant's own clients.

    Raises:
        BadInputError: not 1-128 of letters, digits, ``.``, ``_``, ``:``, ``-``.
    """
    if recipient is None:
        return None
    if not RECIPIENT_PATTERN.fullmatch(recipient):
        raise BadInputError(f"recipient {recipient!r} is malformed; expected a client id "
                            "(1-128 letters, digits, '.', '_', ':' or '-')")
    return recipient


def give_consent(
    session: Session,
    *,
    tenant: str,
    vin: str,
    purpose: str,
    categories: Iterable[str],
    person: str,
    source: str,
    actor: str,
    recipient: str | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
    request_id: str | None = None,
) -> Grant:
    """Add a grant to the ledger; records ``privacy.consent.give``.

    Raises:
        PurposeRequiredError: an unknown purpose.
        BadInputError: a purpose that rests on contract or law (it needs no consent), a
            category the purpose may not use, no category, an unknown person, a malformed
            source or recipient, or an ``expires_at`` not after now.
        NotFoundError: the tenant does not exist.
    """
    chosen = parse_purpose(purpose)
    info = PURPOSE_CATALOG[chosen]
    if not info.consent_categories:
        raise BadInputError(f"purpose {chosen!r} rests on {info.basis.replace('_', ' ')}, not "
                            "consent; purposes that take consent: " + ", ".join(
                                p for p, i in PURPOSE_CATALOG.items() if i.consent_categories))
    allowed = parse_categories(categories)
    if not allowed:
        raise BadInputError("categories is empty; a consent names at least one category")
    outside = sorted(allowed - info.consent_categories)
    if outside:
        raise BadInputError(f"purpose {chosen!r} may not use {', '.join(outside)} by "
                            "consent; consent may cover "
                            f"{', '.join(sorted(info.consent_categories))}")
    who = parse_person(person)
    parse_source(source)
    recipient = parse_recipient(recipient)
    now = now or datetime.now(UTC)
    if expires_at is not None and expires_at.astimezone(UTC) <= now:
        raise BadInputError(f"expires_at {expires_at.isoformat()} is not after now "
                            f"({now.isoformat()})")
    get_tenant(session, tenant)  # NotFoundError when there is none
    row = PurposeGrantRow(
        tenant_id=tenant, vin=vin, purpose=chosen, categories="", person="",
        recipient=recipient, source="", given_at=now, expires_at=expires_at, withdrawn_at=None,
    )
    session.add(row)
    session.flush()  # its grant id
    content: dict[str, Any] = {"categories": " ".join(sorted(allowed)), "person": who,
                               "source": source}
    place(session, row, content)  # in the vehicle's region store
    session.flush()
    record_audit(
        session, tenant=tenant, actor=actor, action="privacy.consent.give",
        target=f"vehicle:{vin}", request_id=request_id, now=now,
        vehicle=audit_vehicle(session, vin),
        details={"grant_id": row.grant_id, "purpose": chosen, "categories": sorted(allowed),
                 "person": who, "recipient": recipient, "source": source,
                 "expires_at": None if expires_at is None else expires_at.isoformat()},
    )
    return _grant(row, content)


def withdraw_consent(
    session: Session,
    *,
    tenant: str,
    grant_id: int,
    actor: str,
    now: datetime | None = None,
    request_id: str | None = None,
) -> Grant:
    """Withdraw one grant (effective at once); records ``privacy.consent.withdraw``.
    Withdrawing a grant already withdrawn changes nothing and records nothing.

    Raises:
        NotFoundError: no such grant in ``tenant`` (another tenant's grant looks the same).
    """
    row = session.get(PurposeGrantRow, grant_id)
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"consent grant {grant_id} does not exist")
    if row.withdrawn_at is not None:
        return _grants(session, [row])[0]
    now = now or datetime.now(UTC)
    row.withdrawn_at = now
    session.flush()
    [grant] = _grants(session, [row])
    record_audit(
        session, tenant=tenant, actor=actor, action="privacy.consent.withdraw",
        target=f"vehicle:{row.vin}", request_id=request_id, now=now,
        vehicle=audit_vehicle(session, row.vin),
        details={"grant_id": grant_id, "purpose": row.purpose,
                 "categories": sorted(grant.categories)},
    )
    return grant


def consent_history(session: Session, tenant: str, vin: str) -> list[Grant]:
    """Every grant of ``vin`` in ``tenant``, oldest first (the ledger's versions)."""
    rows = session.scalars(
        select(PurposeGrantRow)
        .where(PurposeGrantRow.tenant_id == tenant, PurposeGrantRow.vin == vin)
        .order_by(PurposeGrantRow.grant_id)
    )
    return _grants(session, rows)


def active_grants(
    session: Session,
    tenant: str,
    purpose: Purpose,
    *,
    recipient: str | None,
    now: datetime | None = None,
) -> dict[str, frozenset[PrivacyCategory]]:
    """Per VIN, the categories actively consented for ``purpose`` to ``recipient`` (None:
    the tenant's own clients; a third party sees only grants naming it)."""
    now = now or datetime.now(UTC)
    query = select(PurposeGrantRow).where(
        PurposeGrantRow.tenant_id == tenant, PurposeGrantRow.purpose == purpose,
        PurposeGrantRow.withdrawn_at.is_(None),
        or_(PurposeGrantRow.expires_at.is_(None), PurposeGrantRow.expires_at > now),
    )
    query = query.where(PurposeGrantRow.recipient.is_(None) if recipient is None
                        else PurposeGrantRow.recipient == recipient)
    result: dict[str, set[PrivacyCategory]] = {}
    for grant in _grants(session, session.scalars(query)):
        result.setdefault(grant.vin, set()).update(grant.categories)
    return {vin: frozenset(c) for vin, c in result.items()}


def purpose_permit(
    session: Session,
    tenant: str,
    purpose: Purpose,
    *,
    third_party: str | None = None,
    now: datetime | None = None,
) -> ReadPermit:
    """What a read for ``purpose`` in ``tenant`` may see, over lake pseudonyms.

    ``third_party`` is the client id of a third-party app: it reads only under grants that
    name it, never under contract or law (those cover the tenant, not who it shares with).

    Raises:
        PurposeNotAllowedError: a third party reading for a purpose that is not consent-based.
    """
    refuse_data_act_purpose(purpose)
    info = PURPOSE_CATALOG[purpose]
    if third_party is not None and info.basis != "consent":
        raise PurposeNotAllowedError(
            f"a third-party app may not read for {purpose!r} ({info.basis}); it reads only "
            "what an owner or driver granted it")
    grants = active_grants(session, tenant, purpose, recipient=third_party, now=now)
    if not grants:
        return read_permit(purpose, {})
    pseudonym = pseudonymiser(session, tenant)
    return read_permit(purpose, {p: cats for vin, cats in grants.items()
                                 for p in pseudonym.every(vin)})
