"""Consent withdrawn on the car's own screen: the vehicle's signed report updates the ledger.

The agent stops collecting the withdrawn categories at once and reports the change as the
vehicle event ``privacy.consent.withdrawn`` (``drivetrain.edge.consent.WITHDRAWN_EVENT``):
``{"withdrawn": [...], "categories": [...], "version": <the car's version>}``. Ingestion has
verified the envelope's signature with the vehicle's registered key, so the VIN is the
envelope's; the event names none. :func:`withdraw_from_vehicle` then removes the withdrawn
categories from the cloud's consent (source ``vehicle-hmi``, actor ``vehicle:<VIN>``, audited
as any change) and sends the result back as the signed ``privacy.collection`` command with a
newer version, so the car and the cloud agree even when an app's change crossed the report.
A report older than the consent in force (a newer change was made since) changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from sqlalchemy.orm import Session

from drivetrain.cloud.privacy.service import DEFAULT_SOURCE, get_consent
from drivetrain.core.errors import BadInputError
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES, PrivacyCategory

#: The event the agent reports a withdrawal made in the car with.
WITHDRAWN_EVENT: Final = "privacy.consent.withdrawn"
#: The consent source of a change made in the car.
VEHICLE_SOURCE: Final = "vehicle-hmi"
if TYPE_CHECKING:
    from drivetrain.cloud.privacy.flows import ConsentChange

_FIELDS: Final = frozenset({"withdrawn", "categories", "version"})


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """What a ``privacy.consent.withdrawn`` event reports."""

    withdrawn: frozenset[PrivacyCategory]
    categories: frozenset[PrivacyCategory]
    version: int

    @classmethod
    def from_event(cls, data: Mapping[str, object]) -> Withdrawal:
        """Read the event's data.

        Raises:
            BadInputError: a field other than withdrawn, categories and version (a VIN
                included: the signed envelope names the vehicle); lists of unknown categories;
                a version that is not a whole number >= 0; nothing withdrawn.
        """
        unknown = sorted(set(map(str, data)) - _FIELDS)
        if unknown:
            raise BadInputError(
                f"withdrawal: unknown field(s) {', '.join(unknown)}; expected "
                "withdrawn, categories and version"
            )
        lists: dict[str, frozenset[PrivacyCategory]] = {}
        for name in ("withdrawn", "categories"):
            value = data.get(name)
            if (
                not isinstance(value, list)
                or len(value) > len(PRIVACY_CATEGORIES)
                or not all(isinstance(v, str) and v in PRIVACY_CATEGORIES for v in value)
            ):
                raise BadInputError(
                    f"withdrawal.{name}: expected a list of privacy categories "
                    f"({', '.join(PRIVACY_CATEGORIES)})"
                )
            lists[name] = frozenset(c for c in PRIVACY_CATEGORIES if c in value)
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**63:
            raise BadInputError(
                f"withdrawal.version is {version!r:.40}; expected a whole number >= 0"
            )
        if not lists["withdrawn"]:
            raise BadInputError("withdrawal.withdrawn: expected at least one category")
        return cls(lists["withdrawn"], lists["categories"], version)


def withdraw_from_vehicle(
    session: Session,
    *,
    vin: str,
    tenant: str,
    withdrawal: Withdrawal,
    region_default: frozenset[PrivacyCategory] | None = None,
    now: datetime,
) -> ConsentChange | None:
    """Record ``withdrawal``, reported by ``vin`` itself, and confirm it to the car; None when
    a newer consent is in force already (the car gets that one).

    ``region_default``: the vehicle's collection before any consent was recorded (its
    region's policy); without it the platform default.

    Raises:
        NotFoundError: ``vin`` is not a vehicle of ``tenant``.
    """
    # here, not at the top: ingestion imports this module, and the commands domain ingestion
    from drivetrain.cloud.privacy.flows import change_consent, consent_version

    current = get_consent(session, vin, tenant)
    if current.updated_at is not None and consent_version(current.updated_at) >= withdrawal.version:
        return None
    base = (
        region_default
        if current.source == DEFAULT_SOURCE and region_default is not None
        else current.categories
    )
    return change_consent(
        session,
        vin=vin,
        tenant=tenant,
        categories=base - withdrawal.withdrawn,
        source=VEHICLE_SOURCE,
        actor=f"vehicle:{vin}",
        now=now,
        min_version=withdrawal.version + 1,
    )
