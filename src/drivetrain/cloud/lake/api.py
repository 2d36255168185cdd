"""``/v1/telemetry``: signals, fleet aggregates, counts and raw SQL over the lake.

Every route reads the caller's own tenant. A ``tenant`` query parameter may name it
explicitly; naming another tenant is refused (403), as is a token without the route's scope.
Every route that returns samples names its ``purpose``, checked against the contract basis
or the consent ledger and audited (``drivetrain.cloud.privacy.binding``): rows the purpose
does not cover are not read at all, and naming a path or vehicle it does not cover is 403.
Results are JSON (``{"tenant", "rows", "columns", "data": [records]}``, timestamps as
ISO 8601 UTC strings with all their digits) or, with ``Accept:
application/vnd.apache.arrow.stream``, an Arrow IPC stream of the same table.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.infra import Database, Principal, Scope, authorize
from drivetrain.cloud.infra.http import (
    Context,
    Instant,
    api_context,
    request_id_of,
    require_scopes,
)
from drivetrain.cloud.lake.service import SQL_MAX_ROWS, Lake
from drivetrain.cloud.privacy import vehicle_pseudonyms
from drivetrain.cloud.privacy.binding import bind_read, categories_of, record_refusal
from drivetrain.cloud.privacy.purposes import PURPOSES
from drivetrain.core.errors import PermissionDeniedError

router = APIRouter(tags=["telemetry"])

ARROW_STREAM: Final = "application/vnd.apache.arrow.stream"
#: Most rows one JSON response carries; Arrow responses may carry up to SQL_MAX_ROWS.
JSON_MAX_ROWS: Final = 100_000
#: Longest a raw SQL request may run, seconds.
API_SQL_TIMEOUT_S: Final = 30.0

Reader = Annotated[Principal, require_scopes(Scope.TELEMETRY_READ)]
SqlUser = Annotated[Principal, require_scopes(Scope.TELEMETRY_READ, Scope.TELEMETRY_SQL)]
TenantParam = Annotated[
    str | None,
    Query(description="The tenant to read; default and only allowed value: the caller's."),
]
Regions = Annotated[list[str], Query(description="Only these regions (repeat); default: all.")]
PurposeParam = Annotated[
    str | None,
    Query(max_length=32, description="Why the data is read (required): one of "
          f"{', '.join(PURPOSES)}. Checked against the legal basis and the consent ledger; "
          "rows it does not cover are not returned."),
]
Agg = Literal["mean", "min", "max", "last"]

_lake_guard = threading.Lock()

_RESULT_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": f"JSON, or an Arrow IPC stream when the request accepts {ARROW_STREAM}.",
        "content": {ARROW_STREAM: {"schema": {
            "type": "string", "format": "binary", "contentMediaType": ARROW_STREAM,
            "description": "An Arrow IPC stream of the same table as the JSON form.",
        }}},
    }
}

#: A cell of a result table as JSON: timestamps and dates are ISO 8601 text, decimals text,
#: binary base64 text; lists and structs from SQL stay lists and objects.
JsonCell = str | int | float | bool | list[Any] | dict[str, Any] | None


class ColumnOut(BaseModel):
    """One column of a result table."""

    name: str
    type: str = Field(description="Its Arrow type, e.g. timestamp[ns, tz=UTC], double.")


class TableOut(BaseModel):
    """A result table as JSON: one object per row, keyed by column name."""

    tenant: str
    rows: int = Field(description="Rows in `data`.")
    columns: list[ColumnOut]
    data: list[dict[str, JsonCell]]


def lake_of(request: Request) -> Lake:
    """The app's lake, opened from its settings on first use and kept on ``app.state``."""
    state = request.app.state
    lake = getattr(state, "lake", None)
    if lake is None:
        with _lake_guard:
            lake = getattr(state, "lake", None)
            if lake is None:
                lake = Lake.open(api_context(request).settings)
                state.lake = lake
    assert isinstance(lake, Lake)
    return lake


LakeDep = Annotated[Lake, Depends(lake_of)]


def _tenant(
    principal: Principal, scopes: tuple[Scope, ...], tenant: str | None,
    audit: tuple[Database, str, Request] | None = None,
) -> str:
    """The tenant to read: the caller's; naming another is refused (403) and, for a route
    that reads vehicle data (``audit``: database, target, request), audited."""
    tenant = tenant or principal.tenant
    try:
        authorize(principal, scopes, tenant=tenant)
    except PermissionDeniedError as refusal:
        if audit is not None:
            database, target, request = audit
            record_refusal(database, principal, target=target, request_id=request_id_of(request),
                           details={"tenant": tenant}, error=refusal)
        raise
    return tenant


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def _column_values(column: pa.ChunkedArray) -> list[Any]:
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            naive: list[Any] = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S").to_pylist()
            return naive
        utc = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
        stamps: list[Any] = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
        return stamps
    if pa.types.is_floating(column.type):
        return [v if v is None or math.isfinite(v) else None for v in column.to_pylist()]
    if (
        pa.types.is_string(column.type)
        or pa.types.is_integer(column.type)
        or pa.types.is_boolean(column.type)
    ):
        plain: list[Any] = column.to_pylist()
        return plain
    return [_json_value(v) for v in column.to_pylist()]


def table_response(request: Request, tenant: str, table: pa.Table) -> Response:
    """``table`` as an Arrow IPC stream when the request accepts one, else as JSON records."""
    if ARROW_STREAM in request.headers.get("accept", ""):
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return Response(sink.getvalue(), media_type=ARROW_STREAM)
    columns = [_column_values(table.column(i)) for i in range(table.num_columns)]
    names = table.column_names
    data = [dict(zip(names, row)) for row in zip(*columns)] if columns else []
    return JSONResponse(
        {
            "tenant": tenant,
            "rows": table.num_rows,
            "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
            "data": data,
        }
    )


def _row_limit(request: Request, limit: int) -> int:
    arrow = ARROW_STREAM in request.headers.get("accept", "")
    return min(limit, SQL_MAX_ROWS if arrow else JSON_MAX_ROWS)


@router.get("/signals", response_model=TableOut, responses=_RESULT_RESPONSES,
            summary="Samples of vehicles and signals over time")
def get_signals(
    principal: Reader,
    context: Context,
    lake: LakeDep,
    request: Request,
    start: Annotated[Instant, Query(description="Inclusive, ISO 8601 with a timezone.")],
    end: Annotated[Instant, Query(description="Exclusive, ISO 8601 with a timezone.")],
    vehicle: Annotated[list[str], Query(description="Vehicle pseudonyms (repeat).")] = [],  # noqa: B006
    vin: Annotated[list[str], Query(description="VINs, pseudonymised for the tenant.")] = [],  # noqa: B006
    path: Annotated[list[str], Query(description="VSS paths (repeat); default: all.")] = [],  # noqa: B006
    every: Annotated[str | None, Query(description="Down-sample, e.g. 1m, 15s, 1h.")] = None,
    agg: Annotated[Agg, Query(description="Aggregate per bucket when down-sampling.")] = "mean",
    region: Regions = [],  # noqa: B006
    tenant: TenantParam = None,
    purpose: PurposeParam = None,
    limit: Annotated[
        int, Query(ge=1, le=SQL_MAX_ROWS, description=f"Most rows to return (at most "
                   f"{JSON_MAX_ROWS:,} as JSON, {SQL_MAX_ROWS:,} as Arrow).")
    ] = JSON_MAX_ROWS,
) -> Response:
    """Samples of vehicles and paths in [start, end), raw or down-sampled (``every``)."""
    tenant = _tenant(principal, (Scope.TELEMETRY_READ,), tenant,
                     (context.database, "telemetry:signals", request))
    named = {v: v for v in vehicle}
    if vin:
        with context.database.session() as session:
            # every key version: rows written before a pseudonym-key rotation too
            named.update({p: v for v in vin for p in vehicle_pseudonyms(session, tenant, v)})
    vehicles = list(named)
    permit = bind_read(context.database, principal, purpose, target="telemetry:signals",
                       request_id=request_id_of(request), categories=categories_of(path),
                       vehicles=named)
    table = lake.signals(
        tenant,
        vehicles,
        path,
        start,
        end,
        every,
        agg,
        regions=region or None,
        max_rows=_row_limit(request, limit),
        permit=permit.allowed,
    )
    return table_response(request, tenant, table)


@router.get("/aggregate", response_model=TableOut, responses=_RESULT_RESPONSES,
            summary="One signal aggregated over the fleet")
def get_aggregate(
    principal: Reader,
    context: Context,
    lake: LakeDep,
    request: Request,
    path: Annotated[str, Query(description="The VSS path to aggregate.")],
    start: Annotated[Instant, Query(description="Inclusive, ISO 8601 with a timezone.")],
    end: Annotated[Instant, Query(description="Exclusive, ISO 8601 with a timezone.")],
    group_by: Annotated[Literal["region", "vehicle", "day"], Query()] = "region",
    agg: Annotated[Agg, Query()] = "mean",
    region: Regions = [],  # noqa: B006
    tenant: TenantParam = None,
    purpose: PurposeParam = None,
) -> Response:
    """One aggregate of a signal over the fleet, per region, vehicle or day (over the
    vehicles the purpose covers)."""
    tenant = _tenant(principal, (Scope.TELEMETRY_READ,), tenant,
                     (context.database, "telemetry:aggregate", request))
    permit = bind_read(context.database, principal, purpose, target="telemetry:aggregate",
                       request_id=request_id_of(request), categories=categories_of([path]))
    table = lake.fleet_aggregate(tenant, path, start, end, group_by, agg,
                                 regions=region or None, permit=permit.allowed)
    return table_response(request, tenant, table)


@router.get("/counts", response_model=TableOut, responses=_RESULT_RESPONSES,
            summary="Stored samples per region and category")
def get_counts(
    principal: Reader, lake: LakeDep, request: Request, tenant: TenantParam = None
) -> Response:
    """Stored samples per region and privacy category (from the lake index, no scan).

    Counts carry no vehicle's data, so they need no purpose."""
    tenant = _tenant(principal, (Scope.TELEMETRY_READ,), tenant)
    return table_response(request, tenant, lake.counts(tenant))


class SqlRequest(BaseModel):
    """A raw SQL query over the view ``telemetry``."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1,
        max_length=20_000,
        examples=["SELECT path, avg(value) FROM telemetry GROUP BY path"],
    )
    max_rows: int = Field(JSON_MAX_ROWS, ge=1, le=SQL_MAX_ROWS,
                          description=f"Refuse a larger result (at most {JSON_MAX_ROWS:,} rows "
                          f"as JSON, {SQL_MAX_ROWS:,} as Arrow).")


@router.post("/sql", response_model=TableOut, responses=_RESULT_RESPONSES,
             summary="Run one SELECT over the tenant's telemetry")
def post_sql(
    body: SqlRequest,
    principal: SqlUser,
    context: Context,
    lake: LakeDep,
    request: Request,
    tenant: TenantParam = None,
    purpose: PurposeParam = None,
) -> Response:
    """Run one SELECT over ``telemetry`` (the caller's tenant's rows only: vehicle, path, ts,
    value, text, category, batch_id, campaign, dimensions, region, date; only those the
    purpose covers). Needs ``telemetry:sql``."""
    tenant = _tenant(principal, (Scope.TELEMETRY_READ, Scope.TELEMETRY_SQL), tenant,
                     (context.database, "telemetry:sql", request))
    permit = bind_read(context.database, principal, purpose, target="telemetry:sql",
                       request_id=request_id_of(request))
    table = lake.sql(
        tenant, body.query, max_rows=_row_limit(request, body.max_rows),
        timeout_s=API_SQL_TIMEOUT_S, permit=permit.allowed,
    )
    return table_response(request, tenant, table)
