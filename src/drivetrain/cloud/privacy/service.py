"""The privacy domain's public functions: pseudonyms and consent.

**Pseudonyms.** Analytical data (the lake) never holds a VIN: it holds
``HMAC-SHA256(tenant key, VIN)``, truncated to 24 hex digits. The key is per tenant and
secret, so pseudonyms cannot be reversed by hashing candidate VINs, and one tenant's
pseudonyms cannot be linked to another's. The operational twin keeps the real VIN.

**Consent.** Each vehicle has a set of privacy categories its data may be stored for
(see ``drivetrain.core.vss.privacy``). A vehicle with no consent record gets
``DEFAULT_CONSENT``: technical and diagnostic data only, which the service contract covers;
location, driving behaviour and cabin data need explicit consent.
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
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES, PrivacyCategory, is_privacy_category

DEFAULT_CONSENT: Final[frozenset[PrivacyCategory]] = frozenset({"technical", "diagnostics"})
PSEUDONYM_HEX_DIGITS: Final = 24
#: The source reported for a vehicle without a consent record; never recorded as a source.
DEFAULT_SOURCE: Final = "default"
#: What a consent source may look like: a short token such as ``driver-app`` or ``contract``.
CONSENT_SOURCE_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,79}")


@dataclass(frozen=True)
class Pseudonymiser:
    """Maps a tenant's VINs to their pseudonyms (keyed hash); holds the key, never prints it."""

    tenant: str
    _key: bytes

    def __repr__(self) -> str:
        return f"Pseudonymiser(tenant={self.tenant!r})"

    def __call__(self, vin: str) -> str:
        digest = hmac.new(self._key, vin.encode("ascii"), hashlib.sha256).hexdigest()
        return digest[:PSEUDONYM_HEX_DIGITS]


@dataclass(frozen=True)
class Consent:
    """A vehicle's consent: the categories that may be stored, and where it came from."""

    vin: str
    tenant: str
    categories: frozenset[PrivacyCategory]
    source: str
    updated_at: datetime | None  # None for the default (no record)


def pseudonymiser(session: Session, tenant: str) -> Pseudonymiser:
    """The tenant's pseudonymiser; creates the tenant's key on first use.

    Raises:
        NotFoundError: the tenant does not exist.
    """
    row = session.get(PseudonymKeyRow, tenant)
    if row is None:
        get_tenant(session, tenant)  # NotFoundError when there is none
        row = PseudonymKeyRow(
            tenant_id=tenant,
            key=base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
    return Pseudonymiser(tenant, base64.b64decode(row.key))


def vehicle_pseudonym(session: Session, tenant: str, vin: str) -> str:
    """The pseudonym of ``vin`` in ``tenant``'s analytical data."""
    return pseudonymiser(session, tenant)(vin)


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
        row = ConsentRow(vin=vin, tenant_id=tenant, categories=text, source=source, updated_at=now)
        session.add(row)
    else:
        if row.tenant_id != tenant:
            raise NotFoundError(f"vehicle {vin} has no consent record in tenant {tenant!r}")
        row.categories, row.source, row.updated_at = text, source, now
    session.flush()
    record_audit(
        session, tenant=tenant, actor=actor, action="privacy.consent.set",
        target=f"vehicle:{vin}", details={"categories": sorted(allowed), "source": source},
        request_id=request_id, now=now,
    )
    return Consent(vin, tenant, allowed, source, now)


def get_consent(session: Session, vin: str, tenant: str) -> Consent:
    """The vehicle's consent, or ``DEFAULT_CONSENT`` when none was recorded."""
    row = session.get(ConsentRow, vin)
    if row is None or row.tenant_id != tenant:
        return Consent(vin, tenant, DEFAULT_CONSENT, DEFAULT_SOURCE, None)
    return Consent(
        vin, tenant, parse_categories(row.categories.split()), row.source, row.updated_at
    )


def consent_map(
    session: Session, vins: Iterable[str],
    defaults: Mapping[str, frozenset[PrivacyCategory]] | None = None,
) -> dict[str, frozenset[PrivacyCategory]]:
    """Consent categories for many vehicles at once; a vehicle without a record gets its entry
    in ``defaults`` (its region's policy), else ``DEFAULT_CONSENT``."""
    wanted = list(vins)
    given = defaults or {}
    result = {vin: given.get(vin, DEFAULT_CONSENT) for vin in wanted}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for row in session.scalars(select(ConsentRow).where(ConsentRow.vin.in_(chunk))):
            result[row.vin] = parse_categories(row.categories.split())
    return result
