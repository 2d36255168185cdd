"""The campaign runner: starts and finishes campaigns on time and keeps their targeting true.

Each round, for every campaign that is approved, running, suspended — or retired with
withdrawals still on their way — in a transaction of its own:

1. an approved campaign whose start time has come **starts**: it gets its own continuous
   dispatcher job (origin ``campaign``) and the current definition a new wire version;
2. a campaign whose end time has passed **finishes** (vehicles drop it by its ``expires_ns``;
   installs still queued are cancelled);
3. the **targeting** is evaluated again (``lifecycle.plan_targets``): vehicles that now match
   the query get an install (up to the cap), vehicles that stopped matching — or all, when the
   campaign is suspended or retired — get a withdrawal, vehicles holding an outdated version
   get the current one. An open delivery to the same vehicle is superseded (cancelled, its
   retained copy cleared) by the new one;
4. a retired campaign whose withdrawals are all settled closes its job.

Delivery, acknowledgements and per-vehicle state are the dispatcher's.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.campaigns.catalogs import tenant_catalog
from drivetrain.cloud.campaigns.definition import CampaignSpec
from drivetrain.cloud.campaigns.lifecycle import (
    INSTALL,
    WITHDRAW,
    CampaignStatus,
    Member,
    WireVersions,
    next_status,
    plan_targets,
)
from drivetrain.cloud.campaigns.models import CampaignRow, CampaignVersionRow
from drivetrain.cloud.campaigns.service import DOMAIN, campaign_event, store_versions
from drivetrain.cloud.commands import (
    DeliveryDraft,
    Payload,
    RolloutPolicy,
    add_deliveries,
    cancel_deliveries,
    close_job,
    create_job,
    get_job,
    latest_deliveries,
)
from drivetrain.cloud.infra import Database, record_audit
from drivetrain.cloud.infra.bus import queue_status
from drivetrain.cloud.infra.round_loop import RoundLoop
from drivetrain.cloud.twins import select_twins
from drivetrain.core.errors import DrivetrainError
from drivetrain.core.wire import MessageKind

log = logging.getLogger(__name__)

ACTOR: Final = "campaigns:runner"
#: Campaign deliveries wait for the vehicle's ack as long as it takes (offline for weeks).
DELIVERY_POLICY: Final = RolloutPolicy(timeout_s=None, freshness_s=30 * 86_400.0)
_WORKING: Final = ("approved", "running", "suspended", "retired", "finished")


@dataclass(frozen=True, slots=True)
class CampaignRound:
    """What one round did to one campaign."""

    campaign_id: str
    status: CampaignStatus
    installs: int
    withdrawals: int


def _spec(session: Session, row: CampaignRow) -> CampaignSpec:
    assert row.version is not None
    version = session.get(CampaignVersionRow, (row.tenant_id, row.campaign_id, row.version))
    assert version is not None
    return CampaignSpec.from_stored(json.loads(version.definition))


def _transition(session: Session, row: CampaignRow, action: str, now: datetime,
                reason: str) -> None:
    before = row.status
    row.status = next_status(cast(CampaignStatus, row.status), action, row.campaign_id)  # type: ignore[arg-type]
    if action == "start":
        row.started_at = now
    else:
        row.ended_at = row.ended_at or now
    row.updated_at, row.reason = now, reason
    record_audit(session, tenant=row.tenant_id, actor=ACTOR, action=f"campaigns.{action}",
                 target=f"campaign:{row.campaign_id}",
                 details={"from": before, "to": row.status, "reason": reason}, now=now)
    queue_status(session, [campaign_event(row, "started" if action == "start" else "finished", now,
                                  reason=reason)])


def _start(session: Session, row: CampaignRow, spec: CampaignSpec, now: datetime) -> None:
    versions = WireVersions(row.content_version, row.install_version, row.wire_counter)
    versions = versions.new_content()
    job = create_job(
        session, tenant=row.tenant_id, actor=ACTOR,
        payload=Payload(MessageKind.CAMPAIGN, spec.wire_body(versions.install)),
        policy=DELIVERY_POLICY, name=row.campaign_id, origin="campaign", continuous=True,
        now=now,
    )
    row.job_id = job.job_id
    store_versions(row, versions)
    start = spec.start_at.isoformat() if spec.start_at else "approval"
    _transition(session, row, "start", now, f"started at its start time ({start})")


def _job_open(session: Session, row: CampaignRow) -> bool:
    if row.job_id is None:
        return False
    return get_job(session, row.job_id, tenant=row.tenant_id).status in ("scheduled", "running")


def campaign_round(session: Session, row: CampaignRow, now: datetime) -> CampaignRound:
    """One round for one campaign (see the module docstring), in the caller's transaction."""
    spec = _spec(session, row) if row.version is not None else None
    if spec is not None and row.status == "approved" and (
        spec.start_at is None or spec.start_at <= now
    ):
        _start(session, row, spec, now)
    if (spec is not None and spec.end_at is not None and spec.end_at <= now
            and row.status in ("approved", "running", "suspended")):
        _transition(session, row, "finish", now, f"finished at its end time "
                    f"({spec.end_at.isoformat()})")
        if _job_open(session, row):
            assert row.job_id is not None
            close_job(session, row.job_id, tenant=row.tenant_id, actor=ACTOR,
                      reason="campaign finished: vehicles drop it at its end time")
    if spec is None or not _job_open(session, row):
        return CampaignRound(row.campaign_id, cast(CampaignStatus, row.status), 0, 0)
    assert row.job_id is not None
    installs, withdrawals = _retarget(session, row, spec, now)
    if (row.status == "retired" and not installs and not withdrawals
            and get_job(session, row.job_id, tenant=row.tenant_id).counts.outstanding == 0):
        close_job(session, row.job_id, tenant=row.tenant_id, actor=ACTOR,
                  reason="campaign retired: withdrawn from its vehicles")
    return CampaignRound(row.campaign_id, cast(CampaignStatus, row.status), installs,
                         withdrawals)


def _retarget(
    session: Session, row: CampaignRow, spec: CampaignSpec, now: datetime
) -> tuple[int, int]:
    assert row.job_id is not None
    tenant, job_id = row.tenant_id, row.job_id
    latest = latest_deliveries(session, job_id, tenant=tenant)
    members = {vin: Member(d.label, d.state, d.version or 0) for vin, d in latest.items()}
    live = row.status == "running"
    matches: list[str] = []
    if live:
        version_row = session.get(CampaignVersionRow, (tenant, row.campaign_id, row.version))
        catalog, _ = tenant_catalog(session, tenant, version_row.catalog_version
                                    if version_row else None)
        targeting = spec.targeting
        matches = select_twins(session, tenant, targeting.query or "",
                               among=targeting.vins, catalog=catalog)
    plan = plan_targets(members, matches, cap=spec.targeting.max_vehicles,
                        content_version=row.content_version, live=live)
    if plan.empty:
        return 0, 0
    versions = WireVersions(row.content_version, row.install_version, row.wire_counter)
    drafts: list[DeliveryDraft] = []
    never_sent = [v for v in plan.withdraw if members[v].state == "queued"]
    to_withdraw = [v for v in plan.withdraw if members[v].state != "queued"]
    if plan.withdraw:
        cancel_deliveries(session, job_id, plan.withdraw, tenant=tenant,
                          reason="superseded: withdrawn from this vehicle", now=now)
    if to_withdraw:
        version, versions = versions.for_withdrawal()
        body = spec.wire_body(version, cancelled=True)
        drafts += [DeliveryDraft(v, WITHDRAW, body, version) for v in to_withdraw]
    if plan.install:
        cancel_deliveries(session, job_id, plan.install, tenant=tenant,
                          reason="superseded by a newer version", now=now)
        versions = versions.for_installs([members[v].version for v in plan.install
                                          if v in members])
        body = spec.wire_body(versions.install)
        drafts += [DeliveryDraft(v, INSTALL, body, versions.install) for v in plan.install]
    store_versions(row, versions)
    add_deliveries(session, job_id, drafts, tenant=tenant, now=now)
    queue_status(session, [campaign_event(row, "targeting", now, installs=len(plan.install),
                                  withdrawals=len(to_withdraw), cancelled=len(never_sent))])
    return len(plan.install), len(to_withdraw)


def run_campaigns(database: Database, now: datetime | None = None) -> list[CampaignRound]:
    """One round over every campaign that needs one (each in its own transaction); a campaign
    whose round fails is logged and retried next round."""
    now = now or datetime.now(UTC)
    with database.session() as session:
        keys = session.execute(
            select(CampaignRow.tenant_id, CampaignRow.campaign_id)
            .where(CampaignRow.status.in_(_WORKING))
        ).all()
    rounds = []
    for tenant, campaign_id in keys:
        try:
            with database.session() as session:
                row = session.get(CampaignRow, (tenant, campaign_id))
                if row is None or (row.status in ("retired", "finished") and row.job_id is None):
                    continue
                if row.status == "finished" and not _job_open(session, row):
                    continue
                rounds.append(campaign_round(session, row, now))
        except DrivetrainError as e:
            log.warning("campaign %s/%s: round failed: %s", tenant, campaign_id, e)
    return rounds


class CampaignRunner(RoundLoop):
    """Runs campaign rounds on a background thread (see the module docstring).

    Args:
        database: the state database.
        poll_interval_s: longest wait between rounds (targeting is re-evaluated at least this
            often); a campaign change (approve, suspend...) wakes it at once.
    """

    def __init__(self, database: Database, *, poll_interval_s: float = 2.0) -> None:
        super().__init__(database, domain=DOMAIN, thread_name="drivetrain-campaigns",
                         poll_interval_s=poll_interval_s)

    def run_once(self, now: datetime | None = None) -> list[CampaignRound]:
        """One round on the caller's thread."""
        self.rounds += 1
        return run_campaigns(self.database, now)
