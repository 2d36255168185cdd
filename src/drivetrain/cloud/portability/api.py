"""``/v1/privacy/requests``: data subject requests, self-service — access archives and erasure.

A thin shell over :mod:`.rights`. Every route acts for the caller's own tenant: a VIN of
another tenant answers 404 like an unregistered one, and so does another tenant's request.
Opening a request needs ``privacy:write``; reading requests and downloading an access
archive ``privacy:read``. A request is carried out at once and answered with its outcome;
each has its legal deadline (one month) and shows ``overdue`` while open past it.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query, status
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.fleet import get_vehicle
from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import Context, require_scopes
from drivetrain.cloud.lake.api import LakeDep
from drivetrain.cloud.portability.rights import serve_access, serve_erasure
from drivetrain.cloud.privacy.requests import (
    MAX_SUBJECT_VINS,
    DataRequest,
    get_request,
    list_requests,
)
from drivetrain.core.errors import NotFoundError

router = APIRouter(tags=["privacy"])

Reader = Annotated[Principal, require_scopes(Scope.PRIVACY_READ)]
Writer = Annotated[Principal, require_scopes(Scope.PRIVACY_WRITE)]
RequestId = Annotated[str, PathParam(min_length=32, max_length=32, pattern="^[0-9a-f]{32}$",
                                     description="The request's id.")]
#: Where access archives are kept, under the data directory.
ARCHIVE_DIR: Final = "privacy-requests"
ZIP: Final = "application/zip"


class DataRequestWrite(BaseModel):
    """A data subject's request about some of the tenant's vehicles."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["access", "erasure"] = Field(description="access: an archive of everything "
                                               "about them; erasure: delete every trace.")
    vins: list[Annotated[str, Field(min_length=1, max_length=17)]] = Field(
        min_length=1, max_length=MAX_SUBJECT_VINS, examples=[["DTVJETH88T571PG8B"]])


class DataRequestOut(BaseModel):
    """A request as registered, with its deadline and outcome."""

    request_id: str
    kind: Literal["access", "erasure"]
    subjects: list[str] = Field(description="Access: the VINs; erasure: their former lake "
                                "pseudonyms (the VINs are erased).")
    requested_by: str
    received_at: datetime
    due_at: datetime = Field(description="The legal deadline: one month after receipt.")
    status: Literal["open", "done", "failed"]
    completed_at: datetime | None
    overdue: bool
    outcome: dict[str, Any] = Field(description="Access: archive rows and files; erasure: "
                                    "state rows and lake rows removed; failed: the error.")

    @classmethod
    def of(cls, request: DataRequest) -> DataRequestOut:
        data = request.to_dict(datetime.now(UTC))
        if request.kind == "access":  # where the archive lies on the server is not the caller's
            data["outcome"] = {k: v for k, v in data["outcome"].items() if k != "archive"}
        return cls.model_validate(data)


@router.post("", response_model=DataRequestOut, status_code=status.HTTP_201_CREATED,
             summary="Open a data subject request and carry it out")
def post_request(
    body: DataRequestWrite, principal: Writer, context: Context, lake: LakeDep
) -> DataRequestOut:
    """Register an access or erasure request for the caller's vehicles and carry it out."""
    with context.database.session() as session:
        for vin in body.vins:
            get_vehicle(session, vin, tenant=principal.tenant)
    if body.kind == "access":
        done = serve_access(context.database, lake, tenant=principal.tenant, vins=body.vins,
                            archive_root=context.settings.data_dir / ARCHIVE_DIR,
                            actor=principal.client_id)
    else:
        done = serve_erasure(context.database, lake, tenant=principal.tenant, vins=body.vins,
                             actor=principal.client_id)
    return DataRequestOut.of(done)


@router.get("", response_model=list[DataRequestOut], summary="The tenant's data requests")
def get_requests(
    principal: Reader, context: Context,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most requests, newest first.")] = 100,
) -> list[DataRequestOut]:
    """Requests newest first, each with its deadline and whether it is overdue."""
    with context.database.session() as session:
        return [DataRequestOut.of(r) for r in list_requests(session, principal.tenant,
                                                            limit=limit)]


@router.get("/{request_id}", response_model=DataRequestOut, summary="One data request")
def get_one_request(request_id: RequestId, principal: Reader, context: Context) -> DataRequestOut:
    """One request of the caller's tenant (another tenant's answers 404)."""
    with context.database.session() as session:
        return DataRequestOut.of(get_request(session, principal.tenant, request_id))


@router.get(
    "/{request_id}/archive", response_class=StreamingResponse,
    responses={200: {"description": "The access archive as a zip file", "content": {ZIP: {
        "schema": {"type": "string", "format": "binary", "contentMediaType": ZIP,
                   "description": "manifest.json, data/*.json, schemas/*.schema.json, "
                   "telemetry/<REGION>/<VIN>/ (Parquet)."}}}}},
    summary="Download an access archive",
)
def get_archive(request_id: RequestId, principal: Reader, context: Context) -> StreamingResponse:
    """The archive of a completed access request, as a zip of the bundle's files."""
    with context.database.session() as session:
        done = get_request(session, principal.tenant, request_id)
    folder = done.outcome.get("archive")
    if done.kind != "access" or done.status != "done" or not isinstance(folder, str):
        raise NotFoundError(f"data request {request_id} has no access archive")
    return StreamingResponse(_zipped(Path(folder)), media_type=ZIP, headers={
        "Content-Disposition": f'attachment; filename="access-{request_id}.zip"'})


def _zipped(folder: Path) -> Iterator[bytes]:
    """The files under ``folder`` as a zip, built in a temporary file and streamed."""
    with tempfile.TemporaryFile() as spool:
        with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                archive.write(path, path.relative_to(folder).as_posix())
        spool.seek(0, os.SEEK_SET)
        while block := spool.read(1 << 20):
            yield block
