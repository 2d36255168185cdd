"""``/v1/ingest``: dead letters (list, show, replay) and ingestion counters.

Every route answers for the caller's tenant only. Admins of the operator tenant (``default``)
see every tenant, and the dead letters and counters of senders the registry does not know;
they may narrow with ``tenant``. Anyone else naming another tenant gets 403. Reading needs
``telemetry:read``; replaying needs ``telemetry:write``.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.infra import OPERATOR_TENANT, Principal, Scope
from drivetrain.cloud.infra.http import Context, Instant, api_context, require_scopes
from drivetrain.cloud.ingest.pipeline import IngestPipeline
from drivetrain.cloud.ingest.reasons import DEAD_LETTER_REASONS
from drivetrain.cloud.ingest.replay import MAX_REPLAY, replay_dead_letters, select_for_replay
from drivetrain.cloud.ingest.service import (
    MAX_PAGE,
    get_dead_letter,
    ingest_stats,
    list_dead_letters,
    refused_items,
)
from drivetrain.cloud.ingest.sinks import TwinsReportedState
from drivetrain.cloud.lake.api import lake_of
from drivetrain.core.errors import PermissionDeniedError

router = APIRouter(tags=["ingest"])

#: Largest id the state database stores (a signed 64-bit integer); larger ones are refused (422).
MAX_ID: Final = 2**63 - 1

Reader = Annotated[Principal, require_scopes(Scope.TELEMETRY_READ)]
Writer = Annotated[Principal, require_scopes(Scope.TELEMETRY_WRITE)]
TenantParam = Annotated[
    str | None,
    Query(description="Narrow to this tenant (operator admins); others: only their own."),
]
_pipeline_guard = threading.Lock()
_REASONS_TEXT: Final = ", ".join(DEAD_LETTER_REASONS)


def visible_tenant(principal: Principal, tenant: str | None) -> str | None:
    """The tenant whose data ``principal`` may see (None: every tenant, operator admins).

    Raises:
        PermissionDeniedError: a non-operator principal naming another tenant.
    """
    operator = principal.tenant == OPERATOR_TENANT and principal.has_scope(Scope.ADMIN)
    if operator:
        return tenant
    if tenant is not None and tenant != principal.tenant:
        raise PermissionDeniedError(
            f"client {principal.client_id!r} of tenant {principal.tenant!r} may not read "
            f"tenant {tenant!r}'s ingestion data"
        )
    return principal.tenant


def pipeline_of(request: Request) -> IngestPipeline:
    """The app's ingest pipeline (for replays), built from its settings on first use."""
    state = request.app.state
    pipeline = getattr(state, "ingest_pipeline", None)
    if pipeline is None:
        with _pipeline_guard:
            pipeline = getattr(state, "ingest_pipeline", None)
            if pipeline is None:
                context = api_context(request)
                pipeline = IngestPipeline.from_settings(
                    context.settings, context.database, lake_of(request), TwinsReportedState()
                )
                state.ingest_pipeline = pipeline
    assert isinstance(pipeline, IngestPipeline)
    return pipeline


class DeadLetterOut(BaseModel):
    """A dead letter: what was refused, why, and what became of it."""

    dead_letter_id: int
    received_at: datetime
    vin: str = Field(description="The VIN the message claimed ('' if unreadable).")
    tenant: str | None = Field(description="None for a sender the registry does not know.")
    topic: str
    kind: str
    batch_id: str | None
    level: str = Field(description="'message' (whole payload) or 'samples'.")
    reason: str = Field(description=f"One of: {_REASONS_TEXT}.")
    detail: str
    sample_count: int
    payload_format: str
    payload_bytes: int = Field(description="Bytes of the payload kept.")
    payload_size: int = Field(
        description="Bytes of the payload as received; more than payload_bytes when only its "
        "start was kept (a refused message whose signature did not verify)."
    )
    status: str = Field(description="'open' or 'replayed'.")
    replayed_at: datetime | None
    replay_outcome: str | None
    replay_of: int | None


class DeadLetterPage(BaseModel):
    """A page of dead letters; pass ``next_after_id`` as ``after_id`` for the next one."""

    dead_letters: list[DeadLetterOut]
    next_after_id: int | None


class DeadLetterDetail(DeadLetterOut):
    """One dead letter with its refused samples or events (first 100)."""

    items: list[dict[str, Any]]


class ReplayRequest(BaseModel):
    """Which open dead letters to replay: ``ids``, or the filters."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(None, max_length=MAX_REPLAY)
    vin: str | None = None
    reason: str | None = Field(None, description=f"One of: {_REASONS_TEXT}.")
    since: Instant | None = None
    until: Instant | None = None
    tenant: str | None = Field(None, description="Narrow to this tenant (operator admins).")
    limit: int = Field(100, ge=1, le=MAX_REPLAY)


class ReplayOut(BaseModel):
    """What replaying one dead letter did."""

    dead_letter_id: int
    outcome: str = Field(description="replayed, still_refused, duplicate or not_open.")
    detail: str
    accepted: int
    refused: int
    not_consented: int
    new_dead_letters: int


class OutcomeOut(BaseModel):
    outcome: str
    messages: int
    samples: int


class VehicleStatsOut(BaseModel):
    vin: str
    tenant: str
    outcomes: list[OutcomeOut]
    last_at: datetime


class StatsOut(BaseModel):
    """Ingestion counters: totals per outcome and the busiest vehicles."""

    totals: list[OutcomeOut]
    vehicles: list[VehicleStatsOut]


@router.get("/dead-letters", response_model=DeadLetterPage,
            summary="List dead letters with their reasons")
def get_dead_letters(
    principal: Reader,
    context: Context,
    tenant: TenantParam = None,
    vin: Annotated[str | None, Query(description="What this VIN sent (or claimed).")] = None,
    reason: Annotated[str | None, Query(description=f"One of: {_REASONS_TEXT}.")] = None,
    status: Annotated[str, Query(description="open, replayed or all.")] = "open",
    since: Annotated[Instant | None, Query(description="Received at or after.")] = None,
    until: Annotated[Instant | None, Query(description="Received before.")] = None,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID, description="Page: ids after this one.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> DeadLetterPage:
    """Dead letters, oldest first, filtered and paged by id."""
    scope = visible_tenant(principal, tenant)
    with context.database.session() as session:
        letters = list_dead_letters(
            session,
            tenant=scope,
            vin=vin,
            reason=reason,
            status=None if status == "all" else status,
            since=since,
            until=until,
            after_id=after_id,
            limit=limit,
        )
    return DeadLetterPage(
        dead_letters=[DeadLetterOut(**d.to_dict()) for d in letters],
        next_after_id=letters[-1].dead_letter_id if len(letters) == limit else None,
    )


@router.get("/dead-letters/{dead_letter_id}", response_model=DeadLetterDetail,
            summary="One dead letter and what it refused")
def get_one_dead_letter(
    dead_letter_id: Annotated[int, Path(ge=1, le=MAX_ID)], principal: Reader, context: Context
) -> DeadLetterDetail:
    """One dead letter and the samples or events it holds (first 100)."""
    scope = visible_tenant(principal, None)
    with context.database.session() as session:
        letter = get_dead_letter(session, dead_letter_id, tenant=scope)
        items = refused_items(session, dead_letter_id, tenant=scope, limit=100)
    return DeadLetterDetail(**letter.to_dict(), items=items)


@router.post("/dead-letters/replay", response_model=list[ReplayOut],
             summary="Run dead letters through ingestion again")
def post_replay(
    body: ReplayRequest, principal: Writer, context: Context, request: Request
) -> list[ReplayOut]:
    """Replay open dead letters (by id, or the oldest matching the filters)."""
    scope = visible_tenant(principal, body.tenant)
    with context.database.session() as session:
        chosen = select_for_replay(
            session,
            tenant=scope,
            ids=body.ids,
            vin=body.vin,
            reason=body.reason,
            since=body.since,
            until=body.until,
            limit=body.limit,
        )
    results = replay_dead_letters(pipeline_of(request), chosen)
    return [ReplayOut(**r.__dict__) for r in results]


@router.get("/stats", response_model=StatsOut,
            summary="What ingestion did with each vehicle's data")
def get_stats(
    principal: Reader,
    context: Context,
    tenant: TenantParam = None,
    vin: Annotated[str | None, Query(description="Only this VIN.")] = None,
    vehicles: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description="Busiest vehicles listed.")
    ] = 100,
) -> StatsOut:
    """Messages and samples per outcome: totals, and per vehicle (busiest first)."""
    scope = visible_tenant(principal, tenant)
    with context.database.session() as session:
        stats = ingest_stats(session, tenant=scope, vin=vin, vehicles_limit=vehicles)
    return StatsOut(
        totals=[
            OutcomeOut(outcome=o.outcome, messages=o.messages, samples=o.samples)
            for o in stats.totals
        ],
        vehicles=[
            VehicleStatsOut(
                vin=v.vin,
                tenant=v.tenant,
                last_at=v.last_at,
                outcomes=[
                    OutcomeOut(outcome=o.outcome, messages=o.messages, samples=o.samples)
                    for o in v.outcomes
                ],
            )
            for v in stats.vehicles
        ],
    )
