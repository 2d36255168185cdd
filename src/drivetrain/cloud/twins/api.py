"""``/v1/twins``: twins, desired state (ETag / If-Match), fleet queries, change stream, history.

A thin shell over the twins service. Every route acts for the caller's own tenant (from the
token): another tenant's twin answers 404, exactly like a VIN that does not exist. Reads need
``fleet:read``, writes ``fleet:write``. A desired-state write must send ``If-Match`` with the
version it is based on (``428`` without it); a stale one gets ``409`` with both versions.

Reads of current state are purpose-bound (``drivetrain.cloud.privacy.state_reads``): reported
values of personal categories (location, driving behaviour, cabin) are shown only for a
``purpose`` query parameter that covers them for the vehicle, and listed under ``withheld``
otherwise; a query that filters on them needs such a purpose and matches only the vehicles
it covers; a third-party app sees only what a grant to it covers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, TypeVar

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import (
    ApiContext,
    Context,
    Instant,
    problem_response,
    request_id_of,
    require_scopes,
)
from drivetrain.cloud.infra.http.sse import SSE_RESPONSES, event_stream
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.lake.api import PurposeParam, lake_of
from drivetrain.cloud.privacy import vehicle_pseudonym
from drivetrain.cloud.privacy.binding import bind_read, categories_of
from drivetrain.cloud.privacy.state_reads import StateView, bind_state_read, query_categories
from drivetrain.cloud.twins.api_schemas import (
    BulkDesiredOut,
    DeltaOut,
    DesiredByQuery,
    DesiredWrite,
    EcuOut,
    EcuWrite,
    HistoryOut,
    HistoryPointOut,
    ReconciliationOut,
    TwinOut,
    TwinPageOut,
)
from drivetrain.cloud.twins.desired import set_desired, set_desired_by_query
from drivetrain.cloud.twins.ecus import delete_ecu, list_ecus, set_ecu
from drivetrain.cloud.twins.feed import CHANGE_KINDS, ChangeKind, TwinChange, hub_for
from drivetrain.cloud.twins.history import property_history
from drivetrain.cloud.twins.models import Twin
from drivetrain.cloud.twins.query import MatchAll, Node, parse_query, reported_paths
from drivetrain.cloud.twins.registry import sync_twins
from drivetrain.cloud.twins.service import (
    MAX_PAGE,
    get_delta,
    get_twin,
    matching_vins,
    query_twins,
    reconciliation_summary,
)
from drivetrain.cloud.twins.values import from_ns
from drivetrain.core.errors import BadInputError, NotFoundError, VersionConflictError
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.vss.privacy import PERSONAL_CATEGORIES, privacy_category_for

router = APIRouter(tags=["twins"])
_T = TypeVar("_T")

Reader = Annotated[Principal, require_scopes(Scope.FLEET_READ)]
Writer = Annotated[Principal, require_scopes(Scope.FLEET_WRITE)]
LakeDep = Annotated[Lake, Depends(lake_of)]
QueryText = Annotated[
    str, Query(max_length=4000, description='Fleet query, e.g. region == "EU"; empty: all.')
]
IfMatch = Annotated[
    str | None,
    Header(
        description='The desired version the write is based on: "N" (from the ETag), '
        "or * for whatever is current."
    ),
]


def _read(context: Any, read: Callable[[Session], _T]) -> _T:
    """``read`` on a read replica when one is configured; a twin the replica does not have
    yet (never touched, or replication lag) is read — and created — on the primary. A stale
    ETag read here is safe: conditional writes check it on the primary."""
    try:
        with context.database.read_session() as session:
            return read(session)
    except NotFoundError:
        if not context.database.replica_engines:
            raise
    with context.database.session() as session:
        return read(session)


def _etag(version: int) -> str:
    return f'"{version}"'


def _twin_response(
    twin: Twin, status_code: int = 200, *, view: StateView | None = None
) -> JSONResponse:
    """The twin's body with its ETag; without ``view`` (an answer to a write) personal
    categories are withheld as for a read that names no purpose."""
    if view is None:
        view = StateView(None, None, PERSONAL_CATEGORIES)
    body = TwinOut.of(
        twin, datetime.now(UTC),
        shown=lambda path: view.shows(twin.vin, privacy_category_for(path)),
        purpose=view.purpose, withheld=view.withheld(twin.vin),
    ).model_dump(mode="json")
    return JSONResponse(body, status_code=status_code, headers={"ETag": _etag(twin.version)})


def parse_if_match(value: str) -> int | None:
    """The version an ``If-Match`` header names (None for ``*``).

    Raises:
        BadInputError: not ``*`` and not one strong entity tag holding a version.
    """
    text = value.strip()
    if text == "*":
        return None
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        text = text[1:-1]
    if not text.isdigit() or len(text) > 9:
        raise BadInputError(
            f"If-Match {value!r} is not an entity tag of this API; expected the twin's ETag, "
            'e.g. "3", or *'
        )
    return int(text)


def _precondition_required(request: Request) -> JSONResponse:
    return problem_response(
        request,
        status=428,
        title="Precondition required",
        detail="a desired-state write needs an If-Match header with the version it is based "
        'on (the ETag of GET /v1/twins/{vin}, e.g. If-Match: "3"), or If-Match: * to '
        "overwrite whatever is current",
        type_name="PreconditionRequired",
    )


def _conflict(request: Request, error: VersionConflictError) -> JSONResponse:
    headers = {"ETag": _etag(error.current)} if error.current is not None else None
    return problem_response(
        request,
        status=409,
        title="Conflict",
        detail=str(error),
        type_name="VersionConflictError",
        extra={"current_version": error.current, "given_version": error.given},
        headers=headers,
    )


# --- fleet-wide routes (before /{vin}) ------------------------------------------------------
@router.get("", response_model=TwinPageOut, summary="Twins a fleet query selects")
def list_twins(
    principal: Reader,
    context: Context,
    request: Request,
    query: QueryText = "",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=17)] = None,
    purpose: PurposeParam = None,
) -> TwinPageOut:
    """The caller's twins that the query selects, by VIN, with the total match count. A
    query over personal signals needs a ``purpose`` covering them, and matches only the
    vehicles it covers."""
    node = parse_query(query, builtin_catalog())
    among = _bind_query(node, principal, context, request, purpose, target="twins:query")
    if context.database.replica_engines:  # twins of newly registered vehicles: on the primary
        with context.database.session() as session:
            sync_twins(session, principal.tenant)
    with context.database.read_session() as session:
        page = query_twins(session, principal.tenant, query, limit=limit, cursor=cursor,
                           among=among)
    return TwinPageOut.of(page)


def _bind_query(
    node: Node, principal: Principal, context: ApiContext, request: Request,
    purpose: str | None, *, target: str,
) -> frozenset[str] | None:
    """The VINs a fleet query may match under ``purpose`` (None: any); refuses a query over
    personal signals that the purpose does not cover (audited)."""
    filtered = query_categories(reported_paths(node))
    view = bind_state_read(context.database, principal, purpose, target=target,
                           request_id=request_id_of(request), filtered=filtered)
    return _restrict(view, filtered)


def _restrict(view: StateView, filtered: frozenset[str]) -> frozenset[str] | None:
    by_query, by_grant = view.vehicles_for(filtered), view.vehicles()
    if by_query is None or by_grant is None:
        return by_grant if by_query is None else by_query
    return by_query & by_grant


@router.get("/reconciliation", response_model=ReconciliationOut,
            summary="How desired state stands: pending, converged, failed")
def get_reconciliation(
    principal: Reader,
    context: Context,
    request: Request,
    query: QueryText = "",
    path: Annotated[str | None, Query(max_length=200, description="Only this VSS path.")] = None,
    purpose: PurposeParam = None,
) -> ReconciliationOut:
    """Desired items of the selected twins by status, with time-to-converge p50 and max (a
    query over personal signals: as for the twin list)."""
    node = parse_query(query, builtin_catalog())
    among = _bind_query(node, principal, context, request, purpose,
                        target="twins:reconciliation")
    with context.database.session() as session:
        summary = reconciliation_summary(session, principal.tenant, query, path=path,
                                         among=among)
    return ReconciliationOut.of(summary)


@router.post("/desired", response_model=BulkDesiredOut,
             summary="Set desired values on every twin a query selects")
def post_desired_by_query(
    body: DesiredByQuery, principal: Writer, context: Context, request: Request
) -> BulkDesiredOut:
    """Set values on every twin the query selects (each twin gets a new version)."""
    with context.database.session() as session:
        result = set_desired_by_query(
            session,
            body.query,
            body.values,
            tenant=principal.tenant,
            actor=principal.client_id,
            ttl_s=body.ttl_s,
            request_id=request_id_of(request),
        )
    return BulkDesiredOut.of(result)


@router.get(
    "/changes",
    response_class=StreamingResponse,
    responses={200: {"description": "Server-sent events", "content": {"text/event-stream": {
        "schema": {"type": "string", "contentMediaType": "text/event-stream",
                   "description": "Events `id: N`, `event: KIND`, `data: {JSON of the change: "
                   "kind, vin, at, paths, version, detail}`; `event: overflow` with "
                   "`data: {\"lost\": N}`."},
    }}}, 429: SSE_RESPONSES[429]},
    summary="Stream changes to the caller's twins",
)
def stream_changes(
    request: Request,
    principal: Reader,
    context: Context,
    query: QueryText = "",
    kind: Annotated[
        list[ChangeKind] | None, Query(description="Only these kinds (repeat).")
    ] = None,
    max_events: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    timeout_s: Annotated[float | None, Query(gt=0, le=86_400)] = None,
    purpose: PurposeParam = None,
) -> StreamingResponse:
    """Server-sent events of changes to the caller's twins that the query selects.

    Each event is ``event: <kind>`` (reported, desired, converged, failed, ack, ecu) with a
    JSON ``data`` line; ``event: overflow`` says how many changes this stream lost by
    falling behind. The stream ends after ``max_events`` events or ``timeout_s`` seconds.
    Reported paths of personal categories the ``purpose`` does not cover for a vehicle are
    left out of its ``reported`` events (``withheld`` says which and why); one left with no
    path is not sent.
    """
    node = parse_query(query, builtin_catalog())  # a bad query is refused before streaming
    view = bind_state_read(context.database, principal, purpose, target="twins:changes",
                           request_id=request_id_of(request),
                           filtered=query_categories(reported_paths(node)))
    among = _restrict(view, query_categories(reported_paths(node)))
    kinds = tuple(kind) if kind else CHANGE_KINDS
    subscription = hub_for(context.database.engine).subscribe(tenant=principal.tenant, kinds=kinds)
    tenant = principal.tenant

    def selected(vins: set[str]) -> set[str]:
        if among is not None:
            vins &= among
        if isinstance(node, MatchAll) or not vins:
            return vins
        with context.database.session() as session:
            return matching_vins(session, tenant, node, vins)

    async def render(batch: list[TwinChange]) -> list[tuple[str, Any]]:
        keep = await anyio.to_thread.run_sync(selected, {c.vin for c in batch})
        events = (_change_event(c, view) for c in batch if c.vin in keep)
        return [e for e in events if e is not None]

    return event_stream(request, principal, subscription, render, close=subscription.close,
                        max_events=max_events, timeout_s=timeout_s)


def _change_event(change: TwinChange, view: StateView) -> tuple[str, Any] | None:
    """The event of ``change`` as ``view`` may show it; None when nothing of it may be."""
    body = change.to_dict()
    if change.kind != "reported":  # the operator's desired paths and ECU names, not readings
        return change.kind, body
    hidden = {p for p in change.paths if not view.shows(change.vin, privacy_category_for(p))}
    if not hidden:
        return change.kind, body
    body["paths"] = [p for p in change.paths if p not in hidden]
    if not body["paths"]:
        return None
    withheld = view.withheld(change.vin)
    body["withheld"] = {c: withheld[c] for c in sorted({privacy_category_for(p) for p in hidden})}
    return change.kind, body


# --- one twin ----------------------------------------------------------------------------------
@router.get("/{vin}", response_model=TwinOut, responses={200: {"headers": {"ETag": {}}}},
            summary="One twin: reported, desired, delta, ECUs")
def get_one_twin(
    vin: str, principal: Reader, context: Context, request: Request,
    purpose: PurposeParam = None,
) -> JSONResponse:
    """The twin: metadata, ECUs, reported, desired, items, delta; ETag = desired version.
    Reported values of personal categories only for a ``purpose`` that covers them for this
    vehicle (audited); the others are listed under ``withheld`` with the reason."""
    # another tenant's: 404 first
    twin = _read(context, lambda session: get_twin(session, vin, tenant=principal.tenant))
    view = bind_state_read(context.database, principal, purpose, target=f"twins:state:{vin}",
                           request_id=request_id_of(request), vins=[twin.vin])
    return _twin_response(twin, view=view)


def _write_desired(
    vin: str,
    body: DesiredWrite,
    principal: Principal,
    context: ApiContext,
    request: Request,
    if_match: str | None,
    *,
    replace: bool,
) -> JSONResponse:
    if if_match is None:
        return _precondition_required(request)
    version = parse_if_match(if_match)
    try:
        with context.database.session() as session:
            twin = set_desired(
                session,
                vin,
                body.values,
                tenant=principal.tenant,
                if_match=version,
                actor=principal.client_id,
                replace=replace,
                ttl_s=body.ttl_s,
                request_id=request_id_of(request),
            )
    except VersionConflictError as e:
        return _conflict(request, e)
    return _twin_response(twin)


_WRITE_RESPONSES: Final[dict[int | str, dict[str, str]]] = {
    409: {"description": "If-Match is stale; the body names current_version and given_version"},
    428: {"description": "If-Match is missing"},
}


@router.patch("/{vin}/desired", response_model=TwinOut, responses=_WRITE_RESPONSES,
              summary="Change some desired values (If-Match)")
def patch_desired(
    vin: str,
    body: DesiredWrite,
    principal: Writer,
    context: Context,
    request: Request,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Merge values into the desired state (null removes a path); needs If-Match."""
    return _write_desired(vin, body, principal, context, request, if_match, replace=False)


@router.put("/{vin}/desired", response_model=TwinOut, responses=_WRITE_RESPONSES,
            summary="Replace the desired state (If-Match)")
def put_desired(
    vin: str,
    body: DesiredWrite,
    principal: Writer,
    context: Context,
    request: Request,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Replace the whole desired state with these values; needs If-Match."""
    return _write_desired(vin, body, principal, context, request, if_match, replace=True)


@router.get("/{vin}/delta", response_model=DeltaOut, summary="What is still to apply")
def get_one_delta(vin: str, principal: Reader, context: Context) -> DeltaOut:
    """What the vehicle still has to apply (exactly what the desired-state message carries)."""
    with context.database.session() as session:
        delta = get_delta(session, vin, tenant=principal.tenant)
    expires = from_ns(delta.expires_ns) if delta.expires_ns is not None else None
    values = {p: v for p, v in delta.values.items() if v is not None}
    return DeltaOut(version=delta.version, values=values, expires_at=expires)


@router.get("/{vin}/history", response_model=HistoryOut,
            summary="A signal's reported history from the lake")
def get_history(
    vin: str,
    principal: Reader,
    context: Context,
    lake: LakeDep,
    request: Request,
    path: Annotated[str, Query(max_length=200, description="VSS path.")],
    start: Annotated[Instant | None, Query(description="Default: 24 h before end.")] = None,
    end: Annotated[Instant | None, Query(description="Default: now.")] = None,
    every: Annotated[str | None, Query(max_length=16, examples=["1m"])] = None,
    agg: Literal["mean", "min", "max", "last"] = "mean",
    purpose: PurposeParam = None,
) -> HistoryOut:
    """Values of one path over [start, end), raw or down-sampled, from the telemetry lake,
    read for a ``purpose`` that covers the path's category for this vehicle (audited)."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=1)
    with context.database.session() as session:
        get_twin(session, vin, tenant=principal.tenant)  # another tenant's: 404 first
        pseudonym = vehicle_pseudonym(session, principal.tenant, vin)
    bind_read(context.database, principal, purpose, target=f"twins:history:{vin}",
              request_id=request_id_of(request), categories=categories_of([path]),
              vehicles={pseudonym: vin})
    with context.database.session() as session:
        points = property_history(
            session,
            lake,
            vin,
            path,
            tenant=principal.tenant,
            start=start,
            end=end,
            every=every,
            agg=agg,
        )
    return HistoryOut(
        vin=vin,
        path=path,
        start=start,
        end=end,
        every=every,
        agg=agg if every is not None else None,
        points=[HistoryPointOut.of(p) for p in points],
    )


@router.get("/{vin}/ecus", response_model=list[EcuOut], summary="The ECU inventory")
def get_ecus(vin: str, principal: Reader, context: Context) -> list[EcuOut]:
    """The vehicle's ECU inventory."""
    ecus = _read(context, lambda session: list_ecus(session, vin, tenant=principal.tenant))
    return [EcuOut.of(e) for e in ecus]


@router.put("/{vin}/ecus/{ecu}", response_model=EcuOut, summary="Record one ECU")
def put_ecu(
    vin: str, ecu: str, body: EcuWrite, principal: Writer, context: Context, request: Request
) -> EcuOut:
    """Create or replace one ECU entry (hardware id and/or software version)."""
    with context.database.session() as session:
        stored = set_ecu(
            session,
            vin,
            ecu,
            tenant=principal.tenant,
            hardware_id=body.hardware_id,
            software_version=body.software_version,
            actor=principal.client_id,
            request_id=request_id_of(request),
        )
    return EcuOut.of(stored)


@router.delete("/{vin}/ecus/{ecu}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove one ECU entry")
def remove_ecu(
    vin: str, ecu: str, principal: Writer, context: Context, request: Request
) -> Response:
    """Remove one ECU entry."""
    with context.database.session() as session:
        delete_ecu(
            session,
            vin,
            ecu,
            tenant=principal.tenant,
            actor=principal.client_id,
            request_id=request_id_of(request),
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
