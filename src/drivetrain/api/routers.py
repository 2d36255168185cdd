"""The one place routers are assembled: each domain adds its ``(prefix, router)`` here."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from drivetrain.api import (
    audit_routes,
    auth_routes,
    demo_routes,
    health,
    metrics,
    probes,
    tenant_routes,
)
from drivetrain.cloud.campaigns import api as campaigns_api
from drivetrain.cloud.commands import api as commands_api
from drivetrain.cloud.commerce import api as commerce_api
from drivetrain.cloud.ingest import api as ingest_api
from drivetrain.cloud.insights import api as insights_api
from drivetrain.cloud.lake import api as lake_api
from drivetrain.cloud.ota import api as ota_api
from drivetrain.cloud.portability import api as portability_api
from drivetrain.cloud.privacy import aggregate_api as privacy_aggregate_api
from drivetrain.cloud.privacy import api as privacy_api
from drivetrain.cloud.privacy import data_act_admin_api, data_act_api
from drivetrain.cloud.privacy import policy_api as privacy_policy_api
from drivetrain.cloud.security import api as security_api
from drivetrain.cloud.twins import api as twins_api

# (prefix, router) per domain, mounted in this order. Later domains append theirs, e.g.
# ("/v1/tenants/{tenant}/vehicles", twins_api.router): a "{tenant}" in the path makes
# require_scopes check the token's tenant.
ROUTERS: list[tuple[str, APIRouter]] = [
    ("", health.router),
    ("", probes.router),
    ("", metrics.router),
    ("/v1/auth", auth_routes.router),
    ("/v1/tenants", tenant_routes.router),
    ("/v1/audit", audit_routes.router),
    ("/v1/telemetry", lake_api.router),
    ("/v1/twins", twins_api.router),
    ("/v1/ingest", ingest_api.router),
    ("/v1/privacy", privacy_api.router),
    ("/v1/privacy", privacy_aggregate_api.router),
    ("/v1/privacy/requests", portability_api.router),
    ("/v1/tenants/{tenant}/privacy", privacy_policy_api.router),
    ("/v1/data-act", data_act_api.router),
    ("/v1/data-act", data_act_admin_api.router),
    ("/v1/commands", commands_api.commands_router),
    ("/v1/jobs", commands_api.jobs_router),
    ("/v1/campaigns", campaigns_api.router),
    ("/v1/catalogs", campaigns_api.catalogs_router),
    ("/v1/vehicle-models", campaigns_api.models_router),
    ("/v1/commerce", commerce_api.router),
    ("/v1/ota", ota_api.router),
    ("/v1/insights", insights_api.router),
    ("/v1/security", security_api.router),
    ("/v1/demo", demo_routes.router),
]


def include_routers(app: FastAPI, routers: list[tuple[str, APIRouter]] | None = None) -> None:
    """Mount every ``(prefix, router)`` of ``routers`` (default :data:`ROUTERS`) on ``app``."""
    for prefix, router in routers if routers is not None else ROUTERS:
        app.include_router(router, prefix=prefix)
