"""Consent that reaches the vehicle: a change of collection consent is sent to the car.

:func:`change_consent` records the new consent (ingestion applies it from its next
micro-batch) and sends the vehicle the signed command ``privacy.collection`` through the
commands dispatcher, with the categories still allowed and a version (the change time in
milliseconds, so a later change always wins on the vehicle). The vehicle's agent drops every
other category before collecting it (``drivetrain.edge.consent``) and acknowledges; the
job's delivery shows when the car applied it. A vehicle offline now gets it when it comes
back, within :data:`CONSENT_FRESHNESS_S`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.orm import Session

from drivetrain.cloud.commands import RolloutPolicy, send_command
from drivetrain.cloud.privacy.service import Consent, set_consent

#: The command the edge agent applies itself (``drivetrain.edge.consent.CONSENT_COMMAND``).
CONSENT_COMMAND: Final = "privacy.collection"
#: How long a consent change waits for an offline vehicle (the commands maximum, 30 days).
CONSENT_FRESHNESS_S: Final = 30 * 86_400.0


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """The consent recorded, and the job that carries it to the vehicle."""

    consent: Consent
    job_id: str
    version: int


def consent_version(moment: datetime) -> int:
    """The version a consent set at ``moment`` carries to the vehicle: Unix milliseconds."""
    return int(moment.timestamp() * 1000)


def change_consent(
    session: Session,
    *,
    vin: str,
    tenant: str,
    categories: Iterable[str],
    source: str,
    actor: str,
    now: datetime | None = None,
    request_id: str | None = None,
    min_version: int = 0,
) -> ConsentChange:
    """Record ``vin``'s new collection consent and send it to the vehicle (``min_version``:
    the least version it may carry, above one the car set itself).

    Raises:
        BadInputError: an unknown category or a malformed source.
        NotFoundError: the tenant does not exist, or ``vin`` is not its vehicle.
    """
    now = now or datetime.now(UTC)
    consent = set_consent(session, vin=vin, tenant=tenant, categories=categories,
                          source=source, actor=actor, now=now, request_id=request_id)
    version = max(consent_version(now), min_version)
    job = send_command(
        session, vin, CONSENT_COMMAND,
        {"categories": sorted(consent.categories), "version": version},
        tenant=tenant, actor=actor, now=now, request_id=request_id,
        policy=RolloutPolicy(freshness_s=CONSENT_FRESHNESS_S, timeout_s=CONSENT_FRESHNESS_S,
                             max_retries=3),
    )
    return ConsentChange(consent, job.job_id, version)
