"""``GET /healthz``: unauthenticated liveness and database probe."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from drivetrain import __version__
from drivetrain.cloud.infra.http.context import ApiContext, api_context

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


class DatabaseStatus(BaseModel):
    ok: bool
    dialect: str
    revisions: list[str]
    detail: str


class Health(BaseModel):
    status: str
    version: str
    deployment: str
    database: DatabaseStatus


@router.get("/healthz", response_model=Health, summary="Liveness and database status")
def healthz(
    request: Request, response: Response, context: Annotated[ApiContext, Depends(api_context)]
) -> Health:
    """200 when the state database answers, 503 (same body) when it does not."""
    db = context.database.health()
    if not db.ok:
        response.status_code = 503
        # unauthenticated: the cause (host, database name, driver text) goes to the log only
        log.warning("health: the state database is unavailable: %s", db.detail)
    return Health(
        status="ok" if db.ok else "degraded",
        version=__version__,
        deployment=context.settings.deployment,
        database=DatabaseStatus(
            ok=db.ok,
            dialect=context.database.dialect,
            revisions=list(db.revisions),
            detail="ok" if db.ok else "unavailable",
        ),
    )
