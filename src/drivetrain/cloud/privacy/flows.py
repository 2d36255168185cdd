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

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.orm import Session

from drivetrain.cloud.commands import Payload, RolloutPolicy, create_job, get_job, send_command
from drivetrain.cloud.infra import Database
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
        tenant=tenant, actor=actor, now=now, request_id=request_id, policy=PRIVACY_ROLLOUT,
    )
    return ConsentChange(consent, job.job_id, version)


#: How a privacy command waits for an offline vehicle: up to 30 days, retried.
PRIVACY_ROLLOUT: Final = RolloutPolicy(freshness_s=CONSENT_FRESHNESS_S, timeout_s=CONSENT_FRESHNESS_S,
                               max_retries=3)


def change_consents(
    session: Session,
    consents: Mapping[str, Iterable[str]],
    *,
    tenant: str,
    source: str,
    actor: str,
    now: datetime | None = None,
) -> list[str]:
    """:func:`change_consent` for many vehicles at once (a fleet's contracts): each consent is
    recorded and audited, and the vehicles with the same categories get one job of the
    ``privacy.collection`` command. Returns the job ids.

    Raises:
        BadInputError: an unknown category or a malformed source (nothing is stored).
        NotFoundError: the tenant does not exist, or a VIN is not its vehicle.
    """
    now = now or datetime.now(UTC)
    groups: dict[tuple[str, ...], list[str]] = {}
    for vin, categories in consents.items():
        consent = set_consent(session, vin=vin, tenant=tenant, categories=categories,
                              source=source, actor=actor, now=now)
        groups.setdefault(tuple(sorted(consent.categories)), []).append(vin)
    args = {"version": consent_version(now)}
    return [
        create_job(session, tenant=tenant, actor=actor, vins=vins, policy=PRIVACY_ROLLOUT,
                   payload=Payload.command(CONSENT_COMMAND, {**args, "categories": list(names)}),
                   name=CONSENT_COMMAND, origin="privacy", now=now).job_id
        for names, vins in groups.items()
    ]


def wait_delivered(
    database: Database, job_ids: Sequence[str], *, tenant: str, timeout_s: float
) -> bool:
    """Wait until every delivery of the jobs was handed to the vehicle link (a car that
    subscribes then gets its consent before its first sample); False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        with database.session() as session:
            if all(get_job(session, j, tenant=tenant).counts.queued == 0 for j in job_ids):
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
