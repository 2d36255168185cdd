"""Charging plans sent to cars: solve a site's smart-charging LP (:mod:`.charging`), store the
plan and each vehicle's schedule, and send each schedule to its car as a signed command
(``charging.schedule``: plan id, start time, slot length, power per slot in kW).

Every vehicle named must be the tenant's (the command dispatcher refuses another tenant's
VIN as unknown, and nothing is stored).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.commands import send_command
from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.insights.charging import (
    ChargingSession,
    Tariff,
    charge_immediately,
    plan_site,
)
from drivetrain.cloud.insights.models import ChargingPlanRow, ChargingScheduleRow
from drivetrain.core.errors import BadInputError, NotFoundError

SCHEDULE_COMMAND: Final = "charging.schedule"
SLOT_MINUTES: Final = (15, 30, 60)


@dataclass(frozen=True)
class VehicleSchedule:
    vin: str
    power_kw: tuple[float, ...]
    energy_kwh: float
    cost: float
    baseline_cost: float
    shortfall_kwh: float
    command_id: str | None


@dataclass(frozen=True)
class ChargingPlan:
    """A stored plan: the site's cost against charging at once, and each car's schedule."""

    plan_id: str
    site: str
    start_at: datetime
    slot_minutes: int
    site_limit_kw: float | None
    cost: float
    baseline_cost: float
    created_by: str
    created_at: datetime
    schedules: tuple[VehicleSchedule, ...]

    @property
    def saving(self) -> float:
        return self.baseline_cost - self.cost


def create_plan(
    session: Session, tenant: str, *, actor: str, site: str, start_at: datetime,
    slot_minutes: int, prices_per_kwh: Sequence[float], sessions: Sequence[ChargingSession],
    site_limit_kw: float | None = None, now: datetime | None = None, request_id: str | None = None,
) -> ChargingPlan:  # fmt: skip
    """Solve, store and send a site's charging plan (see module doc). Each session's
    ``vehicle`` is a VIN; slots are counted from ``start_at``.

    Raises:
        BadInputError / ChargingRequestError: a bad slot length, start time, price, session or
            limit (the field is named; nothing is stored).
        NotFoundError: a VIN that is not the tenant's.
        MissingExtraError: SciPy is not installed.
    """
    now = now or datetime.now(UTC)
    if slot_minutes not in SLOT_MINUTES:
        raise BadInputError(f"slot_minutes {slot_minutes}; expected one of {SLOT_MINUTES}")
    if start_at.tzinfo is None:
        raise BadInputError(f"start_at {start_at.isoformat()!r} has no timezone")
    if not site or len(site) > 120:
        raise BadInputError("site: expected 1-120 characters")
    if len({s.vehicle for s in sessions}) != len(sessions):
        raise BadInputError("sessions: a vehicle appears twice")
    tariff = Tariff(np.asarray(prices_per_kwh, dtype=np.float64), slot_minutes / 60)
    smart = plan_site(sessions, tariff, site_limit_kw=site_limit_kw)
    baseline = charge_immediately(sessions, tariff, site_limit_kw=site_limit_kw)
    plan = ChargingPlanRow(
        plan_id=f"chg-{uuid.uuid4().hex[:20]}", tenant_id=tenant, site=site, start_at=start_at,
        slot_minutes=slot_minutes, site_limit_kw=site_limit_kw, cost=smart.cost,
        baseline_cost=baseline.cost, created_by=actor, created_at=now,
    )  # fmt: skip
    session.add(plan)
    session.flush()
    for ours, base in zip(smart.plans, baseline.plans, strict=True):
        power = [round(float(p), 2) for p in ours.power_kw]
        job = send_command(
            session, ours.vehicle, SCHEDULE_COMMAND,
            {"plan_id": plan.plan_id, "start": start_at.astimezone(UTC).isoformat(),
             "slot_minutes": slot_minutes, "power_kw": power},
            tenant=tenant, actor=actor, now=now, request_id=request_id,
        )  # fmt: skip
        session.add(ChargingScheduleRow(
            plan_id=plan.plan_id, vin=ours.vehicle, power_kw=json.dumps(power),
            energy_kwh=float(np.sum(ours.power_kw)) * slot_minutes / 60, cost=ours.cost,
            baseline_cost=base.cost, shortfall_kwh=ours.shortfall_kwh, command_id=job.job_id,
        ))  # fmt: skip
    session.flush()
    record_audit(session, tenant=tenant, actor=actor, action="insights.charging.plan",
                 target=f"plan:{plan.plan_id}",
                 details={"site": site, "vehicles": len(sessions), "cost": round(smart.cost, 4),
                          "baseline_cost": round(baseline.cost, 4)},
                 request_id=request_id, now=now)  # fmt: skip
    return get_plan(session, tenant, plan.plan_id)


def get_plan(session: Session, tenant: str, plan_id: str) -> ChargingPlan:
    """Raises NotFoundError for an unknown id or another tenant's plan."""
    row = session.get(ChargingPlanRow, plan_id) if len(plan_id) <= 40 else None
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"charging plan {plan_id!r} does not exist")
    schedules = session.scalars(select(ChargingScheduleRow).where(ChargingScheduleRow.plan_id == plan_id)
                                .order_by(ChargingScheduleRow.vin))  # fmt: skip
    return ChargingPlan(
        row.plan_id, row.site, row.start_at, row.slot_minutes, row.site_limit_kw, row.cost,
        row.baseline_cost, row.created_by, row.created_at,
        tuple(VehicleSchedule(s.vin, tuple(json.loads(s.power_kw)), s.energy_kwh, s.cost,
                              s.baseline_cost, s.shortfall_kwh, s.command_id) for s in schedules),
    )  # fmt: skip


def list_plans(session: Session, tenant: str, *, limit: int = 50) -> list[ChargingPlan]:
    """The tenant's plans, newest first."""
    ids = session.scalars(select(ChargingPlanRow.plan_id).where(ChargingPlanRow.tenant_id == tenant)
                          .order_by(ChargingPlanRow.created_at.desc()).limit(limit))  # fmt: skip
    return [get_plan(session, tenant, i) for i in ids]
