"""``/v1/privacy/aggregates`` and ``/v1/privacy/budget``: safe fleet statistics over location.

``GET /v1/privacy/aggregates/locations`` releases vehicles per map cell (and hour) over what
the named ``purpose`` may read of location (audited as any read), either k-anonymous (groups
under k vehicles suppressed) or differentially private (OpenDP Laplace noise, epsilon charged
to the tenant's budget first; refused when the budget cannot pay). ``GET /v1/privacy/budget``
shows the budget. Both need ``telemetry:read`` and act for the caller's tenant only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import Context, Instant, request_id_of, require_scopes
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.lake.api import PurposeParam, lake_of
from drivetrain.cloud.privacy.aggregates import (
    MAX_CELL_DEG,
    MAX_GROUPS_PER_VEHICLE,
    MIN_CELL_DEG,
    BoundingBox,
    Group,
    check_cell,
)
from drivetrain.cloud.privacy.binding import bind_read
from drivetrain.cloud.privacy.budget import Budget, budget_of
from drivetrain.cloud.privacy.release import LocationQuery, check_query, release_locations

router = APIRouter(tags=["privacy"])

Reader = Annotated[Principal, require_scopes(Scope.TELEMETRY_READ)]
LakeDep = Annotated[Lake, Depends(lake_of)]


class GroupOut(BaseModel):
    cell: str = Field(description="South-west corner of the cell, 'lat,lon' in degrees.")
    hour: datetime | None = Field(description="Start of the UTC hour; null: the whole window.")
    vehicles: int = Field(description="Distinct vehicles (noisy under differential privacy).")
    samples: int | None = Field(description="Per-minute positions (k-anonymity only).")

    @classmethod
    def of(cls, group: Group) -> GroupOut:
        return cls(cell=group.cell, hour=group.hour, vehicles=group.vehicles,
                   samples=group.samples)


class BudgetOut(BaseModel):
    """A tenant's differential-privacy budget (epsilon)."""

    tenant: str
    total: float
    spent: float
    left: float
    releases: int

    @classmethod
    def of(cls, budget: Budget) -> BudgetOut:
        return cls.model_validate(budget.to_dict())


class LocationAggregateOut(BaseModel):
    """A safe release of vehicles per map cell (and hour)."""

    method: Literal["k_anonymity", "differential_privacy"]
    purpose: str
    start: datetime
    end: datetime
    cell_deg: float
    per: Literal["hour", "window"]
    k: int = Field(description="Groups under k vehicles (noisy ones, under differential "
                   "privacy) are suppressed.")
    groups: list[GroupOut]
    suppressed: int = Field(description="Groups not released.")
    epsilon: float | None = Field(description="What the release cost (differential privacy).")
    noise_scale: float | None = Field(description="Laplace scale: sensitivity / epsilon.")
    sensitivity: int | None = Field(description="Most groups one vehicle counts in.")
    error_95: float | None = Field(description="|noise| stays under this with 95 % "
                                   "probability (scale x ln 20).")
    budget: BudgetOut | None = Field(description="The tenant's budget after this release.")


@router.get("/aggregates/locations", response_model=LocationAggregateOut,
            summary="Vehicles per map cell and hour, k-anonymous or differentially private")
def get_location_aggregate(
    principal: Reader,
    context: Context,
    lake: LakeDep,
    request: Request,
    start: Annotated[Instant | None, Query(description="Default: 24 h before end.")] = None,
    end: Annotated[Instant | None, Query(description="Default: now.")] = None,
    purpose: PurposeParam = None,
    cell_deg: Annotated[float, Query(ge=MIN_CELL_DEG, le=MAX_CELL_DEG,
                                     description="Cell size, degrees.")] = 0.01,
    per: Literal["hour", "window"] = "hour",
    method: Literal["k_anonymity", "differential_privacy"] = "k_anonymity",
    k: Annotated[int | None, Query(ge=2, le=1000, description="Smallest group released; "
                                   "default and floor: the installation's minimum.")] = None,
    epsilon: Annotated[float | None, Query(gt=0, le=10, description="Differential privacy: "
                                           "the epsilon this release spends.")] = None,
    bbox: Annotated[str | None, Query(max_length=80, description="Differential privacy: "
                                      "south,west,north,east (degrees) of the cells noised.")
                    ] = None,
    max_groups_per_vehicle: Annotated[int, Query(ge=1, le=MAX_GROUPS_PER_VEHICLE)] = 8,
) -> LocationAggregateOut:
    """Vehicles per cell (× hour) of the vehicles whose location the purpose covers; groups
    under ``k`` vehicles suppressed; with ``method=differential_privacy``, OpenDP noise whose
    epsilon is charged to the tenant's budget first (403 when it is spent)."""
    settings = context.settings
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=1)
    query = LocationQuery(
        start=start, end=end, cell_deg=check_cell(cell_deg), per_hour=per == "hour",
        method=method, k=k or settings.privacy_min_group_vehicles, epsilon=epsilon,
        bbox=BoundingBox.parse(bbox) if bbox is not None else None,
        max_groups_per_vehicle=max_groups_per_vehicle,
    )
    check_query(query, min_k=settings.privacy_min_group_vehicles)
    permit = bind_read(context.database, principal, purpose, target="privacy:aggregate",
                       request_id=request_id_of(request), categories={"location"})
    release, budget = release_locations(
        context.database, lake, tenant=principal.tenant, actor=principal.client_id,
        query=query, permit=permit, budget_total=settings.privacy_epsilon_budget,
        request_id=request_id_of(request))
    scale = release.noise_scale
    return LocationAggregateOut(
        method=method, purpose=permit.purpose, start=start, end=end, cell_deg=cell_deg,
        per=per, k=release.k, groups=[GroupOut.of(g) for g in release.groups],
        suppressed=release.suppressed, epsilon=release.epsilon, noise_scale=scale,
        sensitivity=release.sensitivity,
        error_95=None if scale is None else round(scale * 2.995732273553991, 3),
        budget=None if budget is None else BudgetOut.of(budget),
    )


@router.get("/budget", response_model=BudgetOut, summary="The tenant's privacy budget")
def get_budget(principal: Reader, context: Context) -> BudgetOut:
    """Epsilon the caller's tenant may spend on differentially private releases, and spent."""
    with context.database.session() as session:
        budget = budget_of(session, principal.tenant, context.settings.privacy_epsilon_budget)
    return BudgetOut.of(budget)
