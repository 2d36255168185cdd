"""The privacy domain's public functions: pseudonyms and consent.

**Pseudonyms.** Analytical data (the lake) never holds a VIN: it holds
``HMAC-SHA256(tenant key, VIN)``, truncated to 24 hex digits. The key is per tenant and
secret, so pseudonyms cannot be reversed by hashing candidate VINs, and one tenant's
pseudonyms cannot be linked to another's. The operational twin keeps the real VIN.

**Key rotation.** A tenant's key is versioned: :func:`rotate_pseudonym_key` makes a new key
current, and new data is pseudonymised under it from then on. Earlier keys are kept (rotation
never deletes one) and the lake is not rewritten, so a vehicle has one pseudonym per key
version it had data under: rotation limits how far new data can be linked to old by anyone
holding only the lake, while :meth:`Pseudonymiser.every` still finds every row of the vehicle
for access and erasure requests.

**Consent.** Each vehicle has a set of privacy categories its data may be stored for
(see ``drivetrain.core.vss.privacy``). A vehicle with no consent record gets
``DEFAULT_CONSENT``: technical and diagnostic data only, which the service contract covers;
location, driving behaviour and cabin data need explicit consent. A registered vehicle's
consent is kept in its region's store (``drivetrain.cloud.privacy.regional``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import get_tenant, record_audit
from drivetrain.cloud.privacy.models import ConsentRow, PseudonymKeyRow
from drivetrain.cloud.privacy.regional import (
    audit_vehicle,
    consent_categories,
    contents,
    place,
)
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES, PrivacyCategory, is_privacy_category

DEFAULT_CONSENT: Final[frozenset[PrivacyCategory]] = frozenset({"technical", "diagnostics"})
PSEUDONYM_HEX_DIGITS: Final = 24
#: The source reported for a vehicle without a consent record; never recorded as a source.
DEFAULT_SOURCE: Final = "default"
#: What a consent source may look like: a short token such as ``driver-app`` or ``contract``.
CONSENT_SOURCE_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,79}")


def _pseudonym(key: bytes, vin: str) -> str:
    return hmac.new(key, vin.encode("ascii"), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_DIGITS]


@dataclass(frozen=True)
class Pseudonymiser:
    """Maps a tenant's VINs to their pseudonyms (keyed hash); holds the keys, never prints them.

    Calling it gives the pseudonym under the current key (``version``), the one new data is
    written under; :meth:`every` gives the pseudonyms under every key the tenant ever had.
    """

    tenant: str
    _key: bytes
    version: int = 1
    #: Keys of the earlier versions, newest first.
    _earlier: tuple[bytes, ...] = ()

    def __repr__(self) -> str:
        return f"Pseudonymiser(tenant={self.tenant!r}, version={self.version})"

    def __call__(self, vin: str) -> str:
        return _pseudonym(self._key, vin)

    def every(self, vin: str) -> tuple[str, ...]:
        """``vin``'s pseudonyms under every key version, the current one first."""
        return tuple(_pseudonym(key, vin) for key in (self._key, *self._earlier))


@dataclass(frozen=True)
class PseudonymKey:
    """One version of a tenant's pseudonym key, without the secret."""

    tenant: str
    version: int
    created_at: datetime
    current: bool

    def to_dict(self) -> dict[str, object]:
        return {"tenant": self.tenant, "version": self.version,
                "created_at": self.created_at.isoformat(), "current": self.current}


@dataclass(frozen=True)
class Consent:
    """A vehicle's consent: the categories that may be stored, and where it came from."""

    vin: str
    tenant: str
    categories: frozenset[PrivacyCategory]
    source: str
    updated_at: datetime | None  # None for the default (no record)


def _key_rows(session: Session, tenant: str) -> list[PseudonymKeyRow]:
    """The tenant's key versions, newest first."""
    return list(session.scalars(select(PseudonymKeyRow).where(
        PseudonymKeyRow.tenant_id == tenant).order_by(PseudonymKeyRow.version.desc())))


def _new_key(session: Session, tenant: str, version: int, now: datetime) -> PseudonymKeyRow:
    row = PseudonymKeyRow(
        tenant_id=tenant, version=version,
        key=base64.b64encode(secrets.token_bytes(32)).decode("ascii"), created_at=now,
    )
    session.add(row)
    session.flush()  # two creators of one version at once: ConflictError for the loser
    return row


def pseudonymiser(session: Session, tenant: str) -> Pseudonymiser:
    """The tenant's pseudonymiser (current key, and every earlier one); creates the tenant's
    first key on first use.

    Raises:
        NotFoundError: the tenant does not exist.
    """
    rows = _key_rows(session, tenant)
    if not rows:
        get_tenant(session, tenant)  # NotFoundError when there is none
        rows = [_new_key(session, tenant, 1, datetime.now(UTC))]
    keys = [base64.b64decode(r.key) for r in rows]
    return Pseudonymiser(tenant, keys[0], rows[0].version, tuple(keys[1:]))


def vehicle_pseudonym(session: Session, tenant: str, vin: str) -> str:
    """The pseudonym of ``vin`` in ``tenant``'s analytical data (under the current key)."""
    return pseudonymiser(session, tenant)(vin)


def vehicle_pseudonyms(session: Session, tenant: str, vin: str) -> tuple[str, ...]:
    """Every pseudonym ``vin`` has had in ``tenant``'s analytical data, the current first."""
    return pseudonymiser(session, tenant).every(vin)


def pseudonym_keys(session: Session, tenant: str) -> list[PseudonymKey]:
    """The tenant's key versions (no secrets), newest first; empty before the first use."""
    rows = _key_rows(session, tenant)
    return [PseudonymKey(tenant, r.version, r.created_at, i == 0) for i, r in enumerate(rows)]


def rotate_pseudonym_key(
    session: Session, tenant: str, *, actor: str, now: datetime | None = None,
    request_id: str | None = None,
) -> PseudonymKey:
    """Make a new key ``tenant``'s current one; records ``privacy.pseudonym_key.rotate``.

    New data is pseudonymised under it from then on (a running ingest process picks it up
    within its refresh interval). Earlier keys are kept, and data already in the lake is not
    rewritten: access and erasure requests find a vehicle under every pseudonym it had.

    Raises:
        NotFoundError: the tenant does not exist.
        ConflictError: another rotation of the tenant committed first (retry).
    """
    get_tenant(session, tenant)  # NotFoundError when there is none
    now = now or datetime.now(UTC)
    rows = _key_rows(session, tenant)
    previous = rows[0].version if rows else None
    row = _new_key(session, tenant, (previous or 0) + 1, now)
    record_audit(
        session, tenant=tenant, actor=actor, action="privacy.pseudonym_key.rotate",
        target=f"tenant:{tenant}", details={"version": row.version, "previous": previous},
        request_id=request_id, now=now,
    )
    return PseudonymKey(tenant, row.version, now, True)


def parse_categories(names: Iterable[str]) -> frozenset[PrivacyCategory]:
    """Validate category names.

    Raises:
        BadInputError: a name that is not a privacy category.
    """
    result: set[PrivacyCategory] = set()
    for name in names:
        if not is_privacy_category(name):
            raise BadInputError(
                f"privacy category {name!r} is not known; expected one of {', '.join(PRIVACY_CATEGORIES)}"
            )
        result.add(name)
    return frozenset(result)


def parse_source(source: str) -> str:
    """Validate where a consent came from (``driver-app``, ``contract``, ``operator``...).

    Raises:
        BadInputError: not 1-80 of letters, digits, ``.``, ``_``, ``:``, ``-`` starting with a
            letter or digit, or the reserved ``default``.
    """
    if not CONSENT_SOURCE_PATTERN.fullmatch(source):
        raise BadInputError(
            f"consent source {source!r} is malformed; expected 1-80 letters, digits, '.', '_', "
            "':' or '-', starting with a letter or digit (e.g. driver-app)"
        )
    if source == DEFAULT_SOURCE:
        raise BadInputError(
            f"consent source {DEFAULT_SOURCE!r} is reserved for vehicles without a consent "
            "record; name where the consent came from (e.g. driver-app, contract, operator)"
        )
    return source


def set_consent(
    session: Session,
    *,
    vin: str,
    tenant: str,
    categories: Iterable[str],
    source: str,
    actor: str,
    now: datetime | None = None,
    request_id: str | None = None,
) -> Consent:
    """Record the categories ``vin``'s data may be stored for; records ``privacy.consent.set``
    (with ``request_id``, the API request that made the change, when given).

    Raises:
        BadInputError: an unknown category, or a malformed source (see :func:`parse_source`).
        NotFoundError: the tenant does not exist.
    """
    allowed = parse_categories(categories)
    parse_source(source)
    get_tenant(session, tenant)  # NotFoundError when there is none
    now = now or datetime.now(UTC)
    row = session.get(ConsentRow, vin)
    text = " ".join(sorted(allowed))
    if row is None:
        row = ConsentRow(vin=vin, tenant_id=tenant, categories="", source="", updated_at=now)
        session.add(row)
    elif row.tenant_id != tenant:
        raise NotFoundError(f"vehicle {vin} has no consent record in tenant {tenant!r}")
    row.updated_at = now
    session.flush()
    place(session, row, {"categories": text, "source": source})  # in its region store
    session.flush()
    record_audit(
        session, tenant=tenant, actor=actor, action="privacy.consent.set",
        target=f"vehicle:{vin}", details={"categories": sorted(allowed), "source": source},
        request_id=request_id, now=now, vehicle=audit_vehicle(session, vin),
    )
    return Consent(vin, tenant, allowed, source, now)


def get_consent(session: Session, vin: str, tenant: str) -> Consent:
    """The vehicle's consent, or ``DEFAULT_CONSENT`` when none was recorded."""
    row = session.get(ConsentRow, vin)
    content = None if row is None else contents(session, [row]).get(vin)
    if row is None or row.tenant_id != tenant or content is None:
        return Consent(vin, tenant, DEFAULT_CONSENT, DEFAULT_SOURCE, None)
    categories = parse_categories(content["categories"].split())
    return Consent(vin, tenant, categories, content["source"], row.updated_at)


def consent_map(
    session: Session, vins: Iterable[str],
    defaults: Mapping[str, frozenset[PrivacyCategory]] | None = None,
) -> dict[str, frozenset[PrivacyCategory]]:
    """Consent categories for many vehicles at once; a vehicle without a record gets its entry
    in ``defaults`` (its region's policy), else ``DEFAULT_CONSENT``."""
    wanted = list(vins)
    given = defaults or {}
    result = {vin: given.get(vin, DEFAULT_CONSENT) for vin in wanted}
    # Columns, not entities: ingestion asks this for every micro-batch.
    by_region: dict[str, list[str]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = select(ConsentRow.vin, ConsentRow.region, ConsentRow.categories).where(
            ConsentRow.vin.in_(chunk))
        for vin, region, categories in session.execute(query):
            if region is None:
                result[vin] = parse_categories(categories.split())
            else:
                by_region.setdefault(region, []).append(vin)
    for vin, categories in consent_categories(session, by_region).items():
        result[vin] = parse_categories(categories.split())
    return result
