"""``/v1/commands`` and ``/v1/jobs``: send signed commands, roll jobs out, follow them.

A thin shell over the commands service; every route acts for the caller's own tenant (another
tenant's job answers 404, another tenant's vehicle is an unknown vehicle). Reads need
``fleet:read``, sending and cancelling ``fleet:write``. The routers are mounted by
``drivetrain.api.routers``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import StreamingResponse

from drivetrain.cloud.commands.api_schemas import (
    CancelJob,
    CommandOut,
    CreateJob,
    DeliveryOut,
    DeliveryPageOut,
    JobListOut,
    JobOut,
    SendCommand,
)
from drivetrain.cloud.commands.machine import DeliveryState, JobStatus
from drivetrain.cloud.commands.payloads import Payload
from drivetrain.cloud.commands.policy import RolloutPolicy
from drivetrain.cloud.commands.service import (
    DOMAIN,
    MAX_PAGE,
    cancel_job,
    create_job,
    get_job,
    list_deliveries,
    list_jobs,
    send_command,
)
from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.bus import status_bus
from drivetrain.cloud.infra.http import MAX_STORED_INT, Context, request_id_of, require_scopes
from drivetrain.cloud.infra.http.sse import SSE_RESPONSES, status_stream
from drivetrain.core.errors import NotFoundError

commands_router = APIRouter(tags=["commands"])
jobs_router = APIRouter(tags=["jobs"])

Reader = Annotated[Principal, require_scopes(Scope.FLEET_READ)]
Writer = Annotated[Principal, require_scopes(Scope.FLEET_WRITE)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def _command_out(context: Context, job_id: str, tenant: str) -> CommandOut:
    with context.database.session() as session:
        job = get_job(session, job_id, tenant=tenant)
        if job.origin != "command":
            raise NotFoundError(f"command {job_id!r} does not exist")
        page = list_deliveries(session, job_id, tenant=tenant, limit=1)
    delivery = DeliveryOut.of(page.deliveries[0]) if page.deliveries else None
    return CommandOut(**JobOut.of(job).model_dump(), delivery=delivery)


# --- /v1/commands ----------------------------------------------------------------------------
@commands_router.post("", response_model=CommandOut, status_code=status.HTTP_201_CREATED, summary='Send one signed command to one vehicle')
def post_command(
    body: SendCommand, principal: Writer, context: Context, request: Request
) -> CommandOut:
    """Send one signed command to one vehicle; follow it with GET /v1/commands/{id}."""
    policy = RolloutPolicy.from_dict(body.policy) if body.policy is not None else None
    with context.database.session() as session:
        job = send_command(
            session, body.vin, body.name, body.args, tenant=principal.tenant,
            actor=principal.client_id, policy=policy, request_id=request_id_of(request),
        )
    return _command_out(context, job.job_id, principal.tenant)


@commands_router.get("", response_model=JobListOut, summary="The caller's commands, newest first")
def get_commands(
    principal: Reader, context: Context, limit: Limit = 100,
    before: Annotated[str | None, Query(max_length=40)] = None,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
) -> JobListOut:
    """The caller's commands, newest first."""
    with context.database.session() as session:
        jobs = list_jobs(session, tenant=principal.tenant, origin="command", status=status_,
                         limit=limit, before=before)
    return JobListOut(jobs=[JobOut.of(j) for j in jobs],
                      next_before=jobs[-1].job_id if len(jobs) == limit else None)


@commands_router.get("/{command_id}", response_model=CommandOut, summary='A command and its delivery: queued, delivered, succeeded, failed')
def get_command(command_id: str, principal: Reader, context: Context) -> CommandOut:
    """A command: queued, delivered, succeeded, failed (with reason), timed out or cancelled."""
    return _command_out(context, command_id, principal.tenant)


# --- /v1/jobs --------------------------------------------------------------------------------
@jobs_router.post("", response_model=JobOut, status_code=status.HTTP_201_CREATED, summary='Create a job: a command to the vehicles a query selects')
def post_job(body: CreateJob, principal: Writer, context: Context, request: Request) -> JobOut:
    """Create a job: a command to the vehicles a query (or a VIN list) selects, resolved now."""
    policy = RolloutPolicy.from_dict(body.policy) if body.policy is not None else None
    with context.database.session() as session:
        job = create_job(
            session, tenant=principal.tenant, actor=principal.client_id,
            payload=Payload.command(body.command.name, body.command.args), query=body.query,
            vins=body.vins, policy=policy, name=body.name, start_at=body.start_at,
            request_id=request_id_of(request),
        )
    return JobOut.of(job)


@jobs_router.get("", response_model=JobListOut, summary="The caller's jobs, newest first, with counts")
def get_jobs(
    principal: Reader, context: Context, limit: Limit = 100,
    before: Annotated[str | None, Query(max_length=40)] = None,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    origin: Annotated[str | None, Query(max_length=40,
                                        description="job, command, campaign...")] = None,
) -> JobListOut:
    """The caller's jobs (commands and owners' jobs included), newest first, with counts."""
    with context.database.session() as session:
        jobs = list_jobs(session, tenant=principal.tenant, origin=origin, status=status_,
                         limit=limit, before=before)
    return JobListOut(jobs=[JobOut.of(j) for j in jobs],
                      next_before=jobs[-1].job_id if len(jobs) == limit else None)


@jobs_router.get("/changes", response_class=StreamingResponse, responses=SSE_RESPONSES, summary="Stream changes to the caller's jobs")
def stream_job_changes(
    request: Request, principal: Reader, context: Context,
    job_id: Annotated[str | None, Query(max_length=40, description="Only this job.")] = None,
    max_events: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    timeout_s: Annotated[float | None, Query(gt=0, le=86_400)] = None,
) -> StreamingResponse:
    """Server-sent events of the caller's jobs: created, started, progress (live counts),
    finished, cancelled, aborted — from any process of the deployment."""
    subscription = status_bus(context.database.engine).subscribe(
        tenant=principal.tenant, domains=(DOMAIN,)
    )
    return status_stream(
        request, principal, subscription, keep=lambda e: job_id is None or e.subject == job_id,
        max_events=max_events, timeout_s=timeout_s,
    )


@jobs_router.get("/{job_id}", response_model=JobOut, summary='A job with its live counts')
def get_one_job(job_id: str, principal: Reader, context: Context) -> JobOut:
    """A job with its live counts."""
    with context.database.session() as session:
        return JobOut.of(get_job(session, job_id, tenant=principal.tenant))


@jobs_router.get("/{job_id}/vehicles", response_model=DeliveryPageOut, summary="Each vehicle's delivery: state, attempts, answer or reason")
def get_job_vehicles(
    job_id: str, principal: Reader, context: Context, limit: Limit = 100,
    after: Annotated[int, Query(ge=0, le=MAX_STORED_INT)] = 0,
    state: DeliveryState | None = None,
) -> DeliveryPageOut:
    """Per vehicle: state, attempts, the vehicle's answer or why it failed."""
    with context.database.session() as session:
        page = list_deliveries(session, job_id, tenant=principal.tenant, state=state,
                               after=after, limit=limit)
    return DeliveryPageOut(deliveries=[DeliveryOut.of(d) for d in page.deliveries],
                           next_after=page.next_after)


@jobs_router.post("/{job_id}/cancel", response_model=JobOut, summary='Cancel a scheduled or running job (queued and waiting messages are withdrawn)')
def post_cancel(
    job_id: str, principal: Writer, context: Context, request: Request,
    body: CancelJob | None = None,
) -> JobOut:
    """Cancel a scheduled or running job (queued and waiting messages are withdrawn)."""
    with context.database.session() as session:
        job = cancel_job(session, job_id, tenant=principal.tenant, actor=principal.client_id,
                         reason=body.reason if body else None,
                         request_id=request_id_of(request))
    return JobOut.of(job)
