"""A car that (re)connects catches up on its consent and its region's policy.

The dispatcher keeps one retained message per vehicle slot, and a delivery ends: it can time
out while the car is away, the broker's retained store can be lost, another command then
takes the slot, a car provisioned after a policy push is not among that push's targets, and a
car whose storage was reset forgets what it applied. So the car asks: each time its agent
starts it reports the vehicle event ``privacy.sync`` (``drivetrain.edge.consent.SYNC_EVENT``):
``{"consent_version": N, "policy_region": "EU", "policy_version": M}`` — what it holds
(-1: nothing from the cloud yet). :func:`sync_vehicle` compares that with the cloud's:

- the consent recorded for the vehicle (none recorded: nothing to send; the car keeps its
  region's default): its version is the change time in Unix ms, as sent by
  :func:`drivetrain.cloud.privacy.flows.change_consent`; a car behind it gets the signed
  ``privacy.collection`` again, with that version;
- the latest ``privacy.policy`` pushed for the vehicle's region (the newest such job of the
  tenant): a car behind it, or holding another region's, gets the same signed command again.

Each goes out as a new command job through the dispatcher, so it takes its turn in the
vehicle's slot like any other. A car that is up to date gets nothing: reports are
idempotent, and one repeated before the car applied a resend costs at most a second resend,
which the car refuses as not newer. A change made after the report (by the car's clock) is
not re-sent: its own delivery is on its way, and the report cannot tell if the car missed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from drivetrain.core.errors import BadInputError

#: The event the agent reports on each start (``drivetrain.edge.consent.SYNC_EVENT``).
SYNC_EVENT: Final = "privacy.sync"
_FIELDS: Final = frozenset({"consent_version", "policy_region", "policy_version"})
#: Most privacy jobs looked through for the region's latest policy push.
_POLICY_LOOKBACK: Final = 1000


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """What a ``privacy.sync`` event reports the car holds (-1: nothing from the cloud)."""

    consent_version: int
    policy_region: str
    policy_version: int

    @classmethod
    def from_event(cls, data: Mapping[str, object]) -> SyncRequest:
        """Read the event's data.

        Raises:
            BadInputError: a field other than consent_version, policy_region and
                policy_version; a version that is not a whole number >= -1; a region that is
                not a string of at most 8 characters.
        """
        unknown = sorted(set(map(str, data)) - _FIELDS)
        if unknown:
            raise BadInputError(
                f"privacy sync: unknown field(s) {', '.join(unknown)}; expected "
                "consent_version, policy_region and policy_version"
            )
        versions = []
        for name in ("consent_version", "policy_version"):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value < 2**63:
                raise BadInputError(
                    f"privacy sync.{name} is {value!r:.40}; expected a whole number >= -1"
                )
            versions.append(value)
        region = data.get("policy_region", "")
        if not isinstance(region, str) or len(region) > 8:
            raise BadInputError(
                f"privacy sync.policy_region is {region!r:.40}; expected a region name"
            )
        return cls(versions[0], region, versions[1])


@dataclass(frozen=True, slots=True)
class SyncSent:
    """The job ids sent to bring the car up to date (None: it was not behind)."""

    consent_job: str | None
    policy_job: str | None


def sync_vehicle(
    session: Session,
    *,
    vin: str,
    tenant: str,
    region: str,
    request: SyncRequest,
    reported_at: datetime,
    now: datetime,
) -> SyncSent:
    """Send ``vin`` (of ``tenant``, registered in ``region``) its consent and its region's
    latest policy where ``request``, made at ``reported_at`` (the car's clock), shows the car
    is behind the cloud. A change made after the report is not re-sent: the report cannot
    tell whether the car missed it, and its own delivery is on its way.

    Raises:
        NotFoundError: ``vin`` is not a vehicle of ``tenant``.
    """
    # here, not at the top: ingestion imports this module, and the commands domain ingestion
    from drivetrain.cloud.commands import list_jobs, send_command
    from drivetrain.cloud.privacy.flows import CONSENT_COMMAND, PRIVACY_ROLLOUT, consent_version
    from drivetrain.cloud.privacy.policy_push import POLICY_COMMAND
    from drivetrain.cloud.privacy.service import get_consent

    actor = f"privacy-sync:{vin}"
    consent_job = policy_job = None
    consent = get_consent(session, vin, tenant)  # NotFoundError
    if consent.updated_at is not None and consent.updated_at <= reported_at:
        version = consent_version(consent.updated_at)
        if request.consent_version < version:
            args = {"categories": sorted(consent.categories), "version": version}
            consent_job = send_command(
                session,
                vin,
                CONSENT_COMMAND,
                args,
                tenant=tenant,
                actor=actor,
                now=now,
                policy=PRIVACY_ROLLOUT,
            ).job_id
    for job in list_jobs(session, tenant=tenant, origin="privacy", limit=_POLICY_LOOKBACK):
        args = job.body.get("args") or {}
        if job.name != POLICY_COMMAND or args.get("region") != region:
            continue
        pushed = args.get("version")
        behind = job.created_at <= reported_at and (
            request.policy_region != region
            or (isinstance(pushed, int) and request.policy_version < pushed)
        )
        if behind:
            policy_job = send_command(
                session,
                vin,
                POLICY_COMMAND,
                dict(args),
                tenant=tenant,
                actor=actor,
                now=now,
                policy=PRIVACY_ROLLOUT,
            ).job_id
        break  # newest first: only the latest push counts
    return SyncSent(consent_job, policy_job)
