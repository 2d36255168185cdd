"""``/v1/data-act``: the EU Data Act for owners and the third parties they choose.

An owner (a client of role ``owner`` bound to its vehicles) sees what each vehicle produces,
downloads it (JSON, CSV, Parquet, with VSS metadata), streams it, grants a third party chosen
containers for a period, revokes, and reads the access log. A third party (role
``third_party_app``) reads only the containers an active grant names *and* its token's
``container:<name>`` scopes carry. Every read is decided by
:func:`~drivetrain.cloud.privacy.data_act.decide_access`, logged for the owner, audited and —
for third parties — metered, refusals included (:mod:`drivetrain.cloud.privacy.data_act_log`).
The operator's routes (owners, recipients, metering) are in
:mod:`drivetrain.cloud.privacy.data_act_admin_api`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import Context, Instant, request_id_of, require_scopes
from drivetrain.cloud.infra.http.context import api_context
from drivetrain.cloud.infra.http.sse import SSE_RESPONSES, event_stream
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.lake.api import lake_of
from drivetrain.cloud.privacy.containers import ContainerSet, load_containers
from drivetrain.cloud.privacy.data_act import (
    Access,
    accessible_vins,
    data_act_grants,
    decide_access,
    grant_containers,
    revoke_grant,
)
from drivetrain.cloud.privacy.data_act_log import access_log, log_access
from drivetrain.cloud.privacy.data_act_reads import (
    MEDIA_TYPES,
    Format,
    latest_values,
    read_window,
    render,
)
from drivetrain.cloud.privacy.data_act_schemas import (
    AccessOut,
    ContainerOut,
    DataActGrantOut,
    GrantIn,
    LatestOut,
    VehicleContainerOut,
    VehicleDataOut,
    VehiclesOut,
)
from drivetrain.cloud.privacy.owners import owner_binding
from drivetrain.cloud.twins.feed import TwinChange, hub_for
from drivetrain.cloud.twins.reported import reported_values
from drivetrain.cloud.twins.values import decode_value
from drivetrain.core.errors import DrivetrainError
from drivetrain.core.vss import Catalog, builtin_catalog

router = APIRouter(tags=["data-act"])

Caller = Annotated[Principal, require_scopes(Scope.DATA_ACT)]
Vin = Annotated[str, Path(min_length=1, max_length=17, description="The vehicle's VIN.")]
GrantId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The grant's id.")]
ContainerParam = Annotated[list[str], Query(
    max_length=64, description="Only these containers (repeat); default: all the caller may.")]
PathParam = Annotated[list[str], Query(
    max_length=256, description="Only these VSS paths (repeat), within the containers.")]
T = TypeVar("T")


def containers_of(request: Request) -> ContainerSet:
    """The containers definition of the app's settings (shipped, or the operator's file)."""
    return load_containers(api_context(request).settings.data_act_containers_file)


Containers = Annotated[ContainerSet, Depends(containers_of)]
LakeDep = Annotated[Lake, Depends(lake_of)]


def _decided(
    context: Any, principal: Principal, vin: str, request: Request, action: str,
    read: Callable[[Access], tuple[T, int, int]], *, containers: ContainerSet,
    wanted: list[str], paths: list[str] = [],  # noqa: B006
) -> T:
    """Decide, read, then log and audit the read either way (refusals re-raised)."""
    catalog = builtin_catalog()
    try:
        with context.database.session() as session:
            access = decide_access(session, principal, vin, container_set=containers,
                                   catalog=catalog, containers=wanted, paths=paths)
        result, values, size = read(access)
    except DrivetrainError as refusal:
        log_access(context.database, principal, vin, action=action, containers=wanted,
                   error=refusal, request_id=request_id_of(request))
        raise
    log_access(context.database, principal, vin, action=action, access=access,
               value_count=values, byte_count=size, request_id=request_id_of(request))
    return result


@router.get("/containers", response_model=list[ContainerOut],
            summary="Data Act containers and their signals")
def list_containers(principal: Caller, containers: Containers) -> list[ContainerOut]:
    """Every container with its signals' VSS metadata; trade secrets name their reason."""
    catalog = builtin_catalog()
    return [ContainerOut.of(c, containers, catalog) for c in containers.containers.values()]


@router.get("/vehicles", response_model=VehiclesOut,
            summary="The vehicles the caller reads through the Data Act")
def list_vehicles(principal: Caller, context: Context) -> VehiclesOut:
    """An owner's own vehicles; a third party's under an active grant; else none."""
    with context.database.session() as session:
        return VehiclesOut(vins=accessible_vins(session, principal))


def _overview(access: Access, containers: ContainerSet, catalog: Catalog,
              latest: dict[str, dict[str, Any]]) -> VehicleDataOut:
    parts = []
    for name in access.containers:
        paths = [s.path for s in containers.signals(name, catalog) if s.path in access.paths]
        shown = {p: LatestOut.model_validate(latest[p]) for p in paths if p in latest}
        parts.append(VehicleContainerOut(
            name=name, description=containers.get(name).description, signal_count=len(paths),
            with_values=len(shown), withheld=containers.withheld([name], catalog),
            latest=shown))
    return VehicleDataOut(vin=access.vin, party=access.party, containers=parts)


@router.get("/vehicles/{vin}", response_model=VehicleDataOut,
            summary="What a vehicle produces, with its latest values")
def get_vehicle_data(
    vin: Vin, principal: Caller, context: Context, request: Request, containers: Containers,
    container: ContainerParam = [],  # noqa: B006
) -> VehicleDataOut:
    """Per container: the signals the caller may read, how many have values, the latest
    value of each, and the trade secrets withheld with their reasons."""
    catalog = builtin_catalog()

    def read(access: Access) -> tuple[VehicleDataOut, int, int]:
        with context.database.session() as session:
            latest = latest_values(session, access)
        out = _overview(access, containers, catalog, latest)
        return out, len(latest), len(out.model_dump_json())

    return _decided(context, principal, vin, request, "latest", read, containers=containers,
                    wanted=container)


@router.get("/vehicles/{vin}/data", response_class=Response, summary="Download a vehicle's data",
            responses={200: {"description": "The values with their VSS metadata", "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string", "contentMediaType": "text/csv"}},
                "application/vnd.apache.parquet": {"schema": {
                    "type": "string", "format": "binary",
                    "contentMediaType": "application/vnd.apache.parquet"}}}}})
def download(
    vin: Vin, principal: Caller, context: Context, request: Request, lake: LakeDep,
    containers: Containers,
    start: Annotated[Instant, Query(description="Inclusive, ISO 8601 with a timezone.")],
    end: Annotated[Instant, Query(description="Exclusive; at most 31 days after start.")],
    format: Annotated[Format, Query(description="json, csv or parquet.")] = "json",
    container: ContainerParam = [],  # noqa: B006
    path: PathParam = [],  # noqa: B006
) -> Response:
    """The vehicle's values in [start, end) of the containers (and paths) the caller may
    read, from the lake: JSON (with a ``signals`` metadata object), CSV (with a ``unit``
    column) or Parquet (key-value metadata ``vss`` and ``data_act``)."""
    catalog = builtin_catalog()

    def read(access: Access) -> tuple[bytes, int, int]:
        with context.database.session() as session:
            table = read_window(session, lake, principal.tenant, access, start, end)
        body = render(table, format, access=access, catalog=catalog, start=start, end=end)
        return body, table.num_rows, len(body)

    body = _decided(context, principal, vin, request, "download", read, containers=containers,
                    wanted=container, paths=path)
    name = f"{vin}-{start:%Y%m%dT%H%M%S}.{format}"
    return Response(body, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/vehicles/{vin}/stream", response_class=StreamingResponse,
            responses={200: {"description": "Server-sent events", "content": {
                "text/event-stream": {"schema": {
                    "type": "string", "contentMediaType": "text/event-stream",
                    "description": "`event: values` with `data: {vin, at, values: {path: "
                    "{value, at}}}`; `event: revoked` when the caller's access ends."}}}},
                429: SSE_RESPONSES[429]},
            summary="Stream a vehicle's new values, filtered to the caller's containers")
def stream(
    vin: Vin, principal: Caller, context: Context, request: Request, containers: Containers,
    container: ContainerParam = [],  # noqa: B006
    max_events: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    timeout_s: Annotated[float | None, Query(gt=0, le=86_400)] = None,
) -> StreamingResponse:
    """Server-sent events of the vehicle's newly reported values of the caller's containers
    (trade secrets never); a revoked or expired grant ends the stream with ``revoked``."""
    first = _decided(context, principal, vin, request, "stream",
                     lambda a: (a, 0, 0), containers=containers, wanted=container)
    catalog = builtin_catalog()
    state = _StreamState(first)
    subscription = hub_for(context.database.engine).subscribe(
        tenant=principal.tenant, kinds=("reported",))

    def recheck() -> Access | None:
        try:
            with context.database.session() as session:
                return decide_access(session, principal, vin, container_set=containers,
                                     catalog=catalog, containers=container)
        except DrivetrainError:
            return None

    def values_of(paths: set[str]) -> dict[str, dict[str, Any]]:
        with context.database.session() as session:
            rows = reported_values(session, vin, sorted(paths))
        return {p: {"value": decode_value(r.kind, r.num, r.text),
                    "at": datetime.fromtimestamp(r.ts_ns / 1e9, UTC).isoformat()}
                for p, r in sorted(rows.items())}

    async def render_batch(batch: list[TwinChange]) -> list[tuple[str, Any]]:
        mine = [c for c in batch if c.vin == vin]
        if not mine:
            return []
        # Decided again before every event: a value reported after the owner revoked the
        # grant never leaves (one query per change of this vehicle, at most one per flush).
        access = await anyio.to_thread.run_sync(recheck)
        if access is None:
            return [("revoked", {"detail": f"access to vehicle {vin} ended"})]
        state.access = access
        allowed = set(state.access.paths)
        paths = {p for c in mine for p in c.paths if p in allowed}
        if not paths:
            return []
        values = await anyio.to_thread.run_sync(values_of, paths)
        data = {"vin": vin, "at": mine[-1].at.isoformat(), "values": values}
        state.values += len(values)
        state.bytes += len(json.dumps(data))
        return [("values", data)]

    def close() -> None:
        subscription.close()
        if state.values:  # what the stream sent, logged and metered off the event loop
            threading.Thread(target=log_access, daemon=True, args=(
                context.database, principal, vin), kwargs={
                "action": "streamed", "access": state.access, "value_count": state.values,
                "byte_count": state.bytes, "request_id": request_id_of(request),
                "new_request": False}).start()

    return event_stream(request, principal, subscription, render_batch,
                        close=close, max_events=max_events, timeout_s=timeout_s)


class _StreamState:
    """A stream's last access decision and what the stream has sent."""

    def __init__(self, access: Access) -> None:
        self.access = access
        self.values = self.bytes = 0  # what it sent


@router.post("/vehicles/{vin}/grants", response_model=DataActGrantOut,
             status_code=status.HTTP_201_CREATED,
             summary="Share containers of a vehicle with a third party")
def post_grant(vin: Vin, body: GrantIn, principal: Caller, context: Context, request: Request,
               containers: Containers) -> DataActGrantOut:
    """The owner grants a third party (role third_party_app) the containers for
    ``valid_days``; it reads them with a token carrying ``container:<name>`` scopes."""
    with context.database.session() as session:
        grant = grant_containers(
            session, principal=principal, vin=vin, recipient=body.recipient,
            containers=body.containers, valid_days=body.valid_days, container_set=containers,
            catalog=builtin_catalog(), request_id=request_id_of(request))
    return DataActGrantOut.of(grant, datetime.now(UTC))


@router.get("/vehicles/{vin}/grants", response_model=list[DataActGrantOut],
            summary="The Data Act grants of an owner's vehicle")
def list_grants(vin: Vin, principal: Caller, context: Context) -> list[DataActGrantOut]:
    """Every container grant of the vehicle, oldest first, with its status now."""
    now = datetime.now(UTC)
    with context.database.session() as session:
        owner_binding(session, principal.tenant, principal.client_id, vin)
        grants = data_act_grants(session, principal.tenant, vin)
    return [DataActGrantOut.of(g, now) for g in grants]


@router.post("/grants/{grant_id}/revoke", response_model=DataActGrantOut,
             summary="Revoke a Data Act grant")
def post_revoke(grant_id: GrantId, principal: Caller, context: Context,
                request: Request) -> DataActGrantOut:
    """The owner withdraws the grant; the third party's next read is refused."""
    with context.database.session() as session:
        grant = revoke_grant(session, principal=principal, grant_id=grant_id,
                             request_id=request_id_of(request))
    return DataActGrantOut.of(grant, datetime.now(UTC))


@router.get("/vehicles/{vin}/access-log", response_model=list[AccessOut],
            summary="Who read an owner's vehicle's data")
def get_access_log(
    vin: Vin, principal: Caller, context: Context,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most entries.")] = 100,
) -> list[AccessOut]:
    """Every Data Act read of the vehicle, newest first: who, which containers, how much,
    allowed or refused (with the problem type)."""
    with context.database.session() as session:
        owner_binding(session, principal.tenant, principal.client_id, vin)
        entries = access_log(session, principal.tenant, vin, limit)
    return [AccessOut.model_validate(e) for e in entries]
