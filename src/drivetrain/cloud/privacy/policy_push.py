"""The operator's minimisation policy sent to the cars: one signed command per region.

:func:`push_policy` sends every vehicle of a tenant in a region the region's entry of the
policy in force (``core.privacy_policy.active_policy``: the ``DRIVETRAIN_PRIVACY_POLICY`` file,
else the shipped one) as the command ``privacy.policy`` (``drivetrain.edge.policy``):
``{"region", "version", "rules"}``, through the commands dispatcher, one job per region (its
targets: the query ``region == "R"``). The version is the push time in Unix milliseconds, so a
later push always wins on the car and an older one re-delivered is refused there. A car
offline now gets it when it reconnects, within 30 days. Ingestion applies
the same file by itself (it re-reads it when it changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.orm import Session

from drivetrain.cloud.commands import Payload, create_job
from drivetrain.cloud.infra import get_tenant, record_audit
from drivetrain.cloud.privacy.flows import PRIVACY_ROLLOUT, consent_version
from drivetrain.core.errors import BadInputError
from drivetrain.core.privacy_policy import MinimisationPolicy
from drivetrain.core.regions import REGIONS

#: The command the edge agent applies itself (``drivetrain.edge.policy.POLICY_COMMAND``).
POLICY_COMMAND: Final = "privacy.policy"


@dataclass(frozen=True, slots=True)
class PolicyPush:
    """One region's rules on their way to its vehicles."""

    region: str
    version: int
    job_id: str
    vehicles: int
    rules: dict[str, object]

    def to_dict(self) -> dict[str, object]:
        return {
            "region": self.region,
            "version": self.version,
            "job_id": self.job_id,
            "vehicles": self.vehicles,
            "rules": self.rules,
        }


def push_policy(
    session: Session,
    policy: MinimisationPolicy,
    *,
    tenant: str,
    actor: str,
    regions: Sequence[str] | None = None,
    now: datetime | None = None,
    request_id: str | None = None,
) -> list[PolicyPush]:
    """Send ``policy``'s rules of each region (default: every region it names) to the
    tenant's vehicles there; audited as ``privacy.policy.push``.

    Raises:
        BadInputError: a region not known, or one the policy does not name.
        NotFoundError: the tenant does not exist.
    """
    now = now or datetime.now(UTC)
    get_tenant(session, tenant)  # NotFoundError when there is none
    chosen = list(regions) if regions is not None else sorted(policy.regions)
    for region in chosen:
        if region not in REGIONS:
            raise BadInputError(
                f"region {region!r} not known; expected one of {', '.join(REGIONS)}"
            )
        if region not in policy.regions:
            raise BadInputError(
                f"region {region!r}: the policy {policy.source} names no rules "
                f"for it; it names {', '.join(sorted(policy.regions)) or 'none'}"
            )
    version = consent_version(now)
    pushes = []
    for region in chosen:
        rules = policy.regions[region].to_dict()
        job = create_job(
            session,
            tenant=tenant,
            actor=actor,
            origin="privacy",
            name=POLICY_COMMAND,
            payload=Payload.command(
                POLICY_COMMAND, {"region": region, "version": version, "rules": rules}
            ),
            query=f'region == "{region}"',
            policy=PRIVACY_ROLLOUT,
            now=now,
            request_id=request_id,
        )
        pushes.append(PolicyPush(region, version, job.job_id, job.counts.queued, rules))
    record_audit(
        session,
        tenant=tenant,
        actor=actor,
        action="privacy.policy.push",
        target=f"privacy-policy:{version}",
        details={
            "source": policy.source,
            "version": version,
            "regions": {p.region: p.vehicles for p in pushes},
        },
        now=now,
        request_id=request_id,
    )
    return pushes
