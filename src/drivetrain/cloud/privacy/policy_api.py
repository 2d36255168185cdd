"""``/v1/tenants/{tenant}/privacy/policy``: send the region's minimisation policy to the cars.

A thin shell over :func:`drivetrain.cloud.privacy.policy_push.push_policy`, with the semantics
of ``drivetrain privacy policy push``: each region's rules of the policy in force (the
``DRIVETRAIN_PRIVACY_POLICY`` file, else the shipped one) go to the tenant's cars there as the
signed command ``privacy.policy``, one job per region, audited as ``privacy.policy.push``.
Pushing needs ``admin`` of the tenant in the path (another tenant's path answers 403); a
region that is not known, or that the policy names no rules for, is refused (422) and nothing
is sent.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import Context, request_id_of, require_scopes
from drivetrain.cloud.privacy.policy_push import PolicyPush, push_policy
from drivetrain.core.privacy_policy import active_policy
from drivetrain.core.regions import REGIONS

router = APIRouter(tags=["privacy"])

Admin = Annotated[Principal, require_scopes(Scope.ADMIN)]
TenantPath = Annotated[str, Path(min_length=1, max_length=64, description="The tenant.")]

#: Most regions one push may name (each known region, with room for repeats).
MAX_REGIONS: Final = 16


class PolicyPushWrite(BaseModel):
    """Which regions' rules to send; none: every region the policy names."""

    model_config = ConfigDict(extra="forbid")

    regions: list[str] | None = Field(
        None, max_length=MAX_REGIONS,
        description=f"Regions to send, of {', '.join(REGIONS)}; none: every region the "
        "policy names.", examples=[["EU"]],
    )  # fmt: skip


class RegionPushOut(BaseModel):
    """One region's rules on their way to its vehicles."""

    region: str
    version: int = Field(
        description="The version the cars apply (Unix milliseconds of the "
        "push); a car refuses one older than the policy it holds."
    )
    job_id: str = Field(description="The command job carrying it (GET /v1/jobs/{job_id}).")
    vehicles: int = Field(description="The tenant's vehicles in the region it is sent to.")
    rules: dict[str, object] = Field(description="The region's rules as the cars get them.")

    @classmethod
    def of(cls, push: PolicyPush) -> RegionPushOut:
        return cls.model_validate(push.to_dict())


class PolicyPushOut(BaseModel):
    """The policy sent, and one job per region."""

    source: str = Field(description="The policy file in force.")
    tenant: str
    pushes: list[RegionPushOut]


@router.post(
    "/policy/push",
    response_model=PolicyPushOut,
    summary="Send the region's privacy policy to the tenant's cars",
)
def post_policy_push(
    tenant: TenantPath,
    principal: Admin,
    context: Context,
    request: Request,
    body: PolicyPushWrite | None = None,
) -> PolicyPushOut:
    """Send each chosen region's rules of the policy in force to the tenant's cars there
    (``drivetrain privacy policy push``); a car offline now gets it when it reconnects."""
    policy = active_policy()
    regions = None if body is None else body.regions
    with context.database.session() as session:
        pushes = push_policy(
            session,
            policy,
            tenant=tenant,
            actor=principal.client_id,
            regions=regions,
            request_id=request_id_of(request),
        )
    return PolicyPushOut(
        source=policy.source, tenant=tenant, pushes=[RegionPushOut.of(p) for p in pushes]
    )
