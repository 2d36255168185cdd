"""``/v1/campaigns`` and ``/v1/catalogs``: write, approve and run collection campaigns; the
tenant's signal catalog.

A thin shell over the campaigns service; every route acts for the caller's own tenant (another
tenant's campaign answers 404). Reads need ``campaigns:read``, writes ``campaigns:write``.
Editing an approved version answers 409: a change is a new version (``POST .../versions``),
approved in its turn.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, status
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from drivetrain.cloud.campaigns.api_schemas import (
    DEFINITION_EXAMPLE,
    Approve,
    CampaignOut,
    CampaignVehicleOut,
    CatalogIn,
    CatalogOut,
    CatalogVersionOut,
    ManifestIn,
    ManifestOut,
    PolicyIn,
    PolicyOut,
    SignalOut,
    StatusChange,
    VehicleModelIn,
    VehicleModelOut,
    VersionOut,
)
from drivetrain.cloud.campaigns.catalogs import (
    add_catalog_version,
    list_catalog_versions,
    tenant_catalog,
)
from drivetrain.cloud.campaigns.lifecycle import CampaignStatus, VehicleState
from drivetrain.cloud.campaigns.manifests import (
    ManifestInfo,
    VehicleModel,
    add_manifest,
    create_vehicle_model,
    list_manifests,
    list_vehicle_models,
    publish_manifest,
)
from drivetrain.cloud.campaigns.service import (
    DOMAIN,
    MAX_PAGE,
    OperatorAction,
    approve_campaign,
    campaign_vehicles,
    change_status,
    create_campaign,
    edit_campaign,
    get_campaign,
    get_campaign_version,
    list_campaigns,
    new_campaign_version,
    requires_second_approver,
    set_campaign_policy,
)
from drivetrain.cloud.commands.api_schemas import JobOut
from drivetrain.cloud.fleet import cloud_signing_key
from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.bus import status_bus
from drivetrain.cloud.infra.http import MAX_STORED_INT, Context, request_id_of, require_scopes
from drivetrain.cloud.infra.http.sse import SSE_RESPONSES, status_stream
from drivetrain.cloud.ingest.webhooks import webhook_secret

router = APIRouter(tags=["campaigns"])
catalogs_router = APIRouter(tags=["catalogs"])
models_router = APIRouter(tags=["vehicle models"])

Reader = Annotated[Principal, require_scopes(Scope.CAMPAIGNS_READ)]
Writer = Annotated[Principal, require_scopes(Scope.CAMPAIGNS_WRITE)]
VersionNumber = Annotated[int, PathParam(ge=1, le=MAX_STORED_INT)]
Definition = Annotated[dict[str, Any], Body(examples=[DEFINITION_EXAMPLE])]


@router.post("", response_model=CampaignOut, status_code=status.HTTP_201_CREATED, summary="Write a campaign as a draft (version 1), checked against the tenant's catalog")
def post_campaign(
    body: Definition, principal: Writer, context: Context, request: Request
) -> CampaignOut:
    """Write a campaign as a draft (version 1), checked against the tenant's catalog."""
    with context.database.session() as session:
        view = create_campaign(session, body, tenant=principal.tenant,
                               actor=principal.client_id, request_id=request_id_of(request))
    return _with_secret(CampaignOut.of(view), body, principal, context)


@router.get("", response_model=list[CampaignOut], summary="The tenant's campaigns, newest first, with their vehicles by state")
def get_campaigns(
    principal: Reader, context: Context,
    status_: Annotated[CampaignStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> list[CampaignOut]:
    """The tenant's campaigns, newest first, with their vehicles by state."""
    with context.database.session() as session:
        return [CampaignOut.of(v) for v in list_campaigns(session, tenant=principal.tenant,
                                                          status=status_, limit=limit)]


@router.get("/changes", response_class=StreamingResponse, responses=SSE_RESPONSES, summary="Stream changes to the tenant's campaigns")
def stream_campaign_changes(
    request: Request, principal: Reader, context: Context,
    campaign_id: Annotated[str | None, Query(max_length=64)] = None,
    max_events: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    timeout_s: Annotated[float | None, Query(gt=0, le=86_400)] = None,
) -> StreamingResponse:
    """Server-sent events of the tenant's campaigns (created, approved, started, targeting,
    suspended, resumed, finished, retired), from any process of the deployment."""
    subscription = status_bus(context.database.engine).subscribe(
        tenant=principal.tenant, domains=(DOMAIN,)
    )
    return status_stream(
        request, principal, subscription, keep=lambda e: campaign_id is None or e.subject == campaign_id,
        max_events=max_events, timeout_s=timeout_s,
    )


@router.get("/policy", response_model=PolicyOut, summary='Whether a campaign version needs a second person to approve it')
def get_policy(principal: Reader, context: Context) -> PolicyOut:
    """Whether a campaign version needs a second person to approve it."""
    with context.database.session() as session:
        return PolicyOut(require_second_approver=requires_second_approver(
            session, principal.tenant))


@router.put("/policy", response_model=PolicyOut, summary='Require (or not) a second person to approve campaigns (tenant admins only)')
def put_policy(
    body: PolicyIn, principal: Annotated[Principal, require_scopes(Scope.ADMIN)],
    context: Context, request: Request,
) -> PolicyOut:
    """Require (or not) a second person to approve campaigns (tenant admins only)."""
    with context.database.session() as session:
        value = set_campaign_policy(session, principal.tenant,
                                    require_second_approver=body.require_second_approver,
                                    actor=principal.client_id,
                                    request_id=request_id_of(request))
    return PolicyOut(require_second_approver=value)


@router.get("/{campaign_id}", response_model=CampaignOut, summary='A campaign, its version in force and its vehicles by state')
def get_one_campaign(campaign_id: str, principal: Reader, context: Context) -> CampaignOut:
    """A campaign, its version in force and its vehicles by state."""
    with context.database.session() as session:
        return CampaignOut.of(get_campaign(session, campaign_id, tenant=principal.tenant))


@router.put("/{campaign_id}", response_model=CampaignOut,
            responses={409: {"description": "The newest version is approved: write a new one"}}, summary='Edit the newest version while it is a draft (an approved one is never edited)')
def put_campaign(
    campaign_id: str, body: Definition, principal: Writer, context: Context,
    request: Request,
) -> CampaignOut:
    """Edit the newest version while it is a draft (an approved one is never edited)."""
    with context.database.session() as session:
        view = edit_campaign(session, campaign_id, body, tenant=principal.tenant,
                             actor=principal.client_id, request_id=request_id_of(request))
    return CampaignOut.of(view)


@router.post("/{campaign_id}/versions", response_model=CampaignOut,
             status_code=status.HTTP_201_CREATED, summary='Write the next version as a draft')
def post_version(
    campaign_id: str, body: Definition, principal: Writer, context: Context,
    request: Request,
) -> CampaignOut:
    """Write the next version as a draft; it takes effect once approved."""
    with context.database.session() as session:
        view = new_campaign_version(session, campaign_id, body, tenant=principal.tenant,
                                    actor=principal.client_id,
                                    request_id=request_id_of(request))
    return _with_secret(CampaignOut.of(view), body, principal, context)


def _with_secret(out: CampaignOut, body: dict[str, Any], principal: Principal,
                 context: Context) -> CampaignOut:
    """``out`` with the campaign's webhook secret when the written version posts to one."""
    destinations = body.get("destinations") or []
    if any(isinstance(d, dict) and d.get("type") == "webhook" for d in destinations):
        out.webhook_secret = webhook_secret(context.token_key.secret, principal.tenant,
                                            out.campaign_id)
    return out


@router.get("/{campaign_id}/versions/{version}", response_model=VersionOut, summary='One version of the definition')
def get_version(
    campaign_id: str, version: VersionNumber, principal: Reader, context: Context
) -> VersionOut:
    """One version of the definition."""
    with context.database.session() as session:
        return VersionOut.of(get_campaign_version(session, campaign_id, version,
                                                  tenant=principal.tenant))


@router.post("/{campaign_id}/approve", response_model=CampaignOut, summary='Approve a draft version (by a second person where the tenant requires it)')
def post_approve(
    campaign_id: str, principal: Writer, context: Context, request: Request,
    body: Approve | None = None,
) -> CampaignOut:
    """Approve a draft version (by a second person where the tenant requires it)."""
    with context.database.session() as session:
        view = approve_campaign(session, campaign_id, tenant=principal.tenant,
                                actor=principal.client_id,
                                version=body.version if body else None,
                                request_id=request_id_of(request))
    return CampaignOut.of(view)


def _change(
    campaign_id: str, action: OperatorAction, principal: Principal, context: Context,
    request: Request, body: StatusChange | None,
) -> CampaignOut:
    with context.database.session() as session:
        view = change_status(session, campaign_id, action, tenant=principal.tenant,
                             actor=principal.client_id, reason=body.reason if body else None,
                             request_id=request_id_of(request))
    return CampaignOut.of(view)


@router.post("/{campaign_id}/suspend", response_model=CampaignOut, summary='Suspend a running campaign')
def post_suspend(campaign_id: str, principal: Writer, context: Context, request: Request,
                 body: StatusChange | None = None) -> CampaignOut:
    """Suspend a running campaign: it is withdrawn from its vehicles until resumed."""
    return _change(campaign_id, "suspend", principal, context, request, body)


@router.post("/{campaign_id}/resume", response_model=CampaignOut, summary='Resume a suspended campaign')
def post_resume(campaign_id: str, principal: Writer, context: Context, request: Request,
                body: StatusChange | None = None) -> CampaignOut:
    """Resume a suspended campaign: its vehicles get it again."""
    return _change(campaign_id, "resume", principal, context, request, body)


@router.post("/{campaign_id}/retire", response_model=CampaignOut, summary='Retire a campaign for good')
def post_retire(campaign_id: str, principal: Writer, context: Context, request: Request,
                body: StatusChange | None = None) -> CampaignOut:
    """Retire a campaign for good: withdrawn from every vehicle that has it."""
    return _change(campaign_id, "retire", principal, context, request, body)


@router.get("/{campaign_id}/vehicles", response_model=list[CampaignVehicleOut], summary="Each vehicle's state in the campaign (the vehicle's reason for a rejection)")
def get_vehicles(
    campaign_id: str, principal: Reader, context: Context,
    state: VehicleState | None = None,
) -> list[CampaignVehicleOut]:
    """Each vehicle's state in the campaign (the vehicle's reason for a rejection)."""
    with context.database.session() as session:
        return [CampaignVehicleOut.of(v) for v in campaign_vehicles(
            session, campaign_id, tenant=principal.tenant, state=state)]


# --- /v1/catalogs ------------------------------------------------------------------------------
@catalogs_router.get("", response_model=list[CatalogVersionOut], summary="The versions of the tenant's signal catalog")
def get_catalog_versions(principal: Reader, context: Context) -> list[CatalogVersionOut]:
    """The versions of the tenant's signal catalog (empty: the standard VSS catalog)."""
    with context.database.session() as session:
        return [CatalogVersionOut.of(v) for v in list_catalog_versions(session,
                                                                       principal.tenant)]


@catalogs_router.post("", response_model=CatalogVersionOut, status_code=status.HTTP_201_CREATED, summary='Write a new catalog version')
def post_catalog_version(
    body: CatalogIn, principal: Writer, context: Context, request: Request
) -> CatalogVersionOut:
    """Write a new catalog version: an overlay (custom signals, narrowed ranges) or an
    import of a whole VSS JSON export."""
    with context.database.session() as session:
        version = add_catalog_version(session, principal.tenant, body.kind, body.document,
                                      actor=principal.client_id, description=body.description,
                                      request_id=request_id_of(request))
    return CatalogVersionOut.of(version)


@catalogs_router.get("/current", response_model=CatalogOut, summary="The signals of the tenant's catalog (at a version, below a branch)")
def get_current_catalog(
    principal: Reader, context: Context,
    version: Annotated[int | None, Query(ge=1, le=MAX_STORED_INT,
                                         description="Default: the newest.")] = None,
    prefix: Annotated[str | None, Query(max_length=200, examples=["Vehicle.Acme"])] = None,
) -> CatalogOut:
    """The signals of the tenant's catalog (at a version, below a branch)."""
    with context.database.session() as session:
        catalog, number = tenant_catalog(session, principal.tenant, version)
    if prefix:
        catalog = catalog.with_prefix(prefix)
    return CatalogOut(version=number, signals=[
        SignalOut(path=s.path, node_type=s.node_type, datatype=s.datatype, unit=s.unit)
        for s in catalog
    ])


# --- /v1/vehicle-models -----------------------------------------------------------------------
def _model_out(model: VehicleModel) -> VehicleModelOut:
    return VehicleModelOut(model_id=model.model, name=model.name,
                           latest_manifest=model.latest_manifest,
                           published_manifest=model.published_manifest,
                           created_by=model.created_by, created_at=model.created_at)


def _manifest_out(info: ManifestInfo) -> ManifestOut:
    return ManifestOut(model_id=info.model, version=info.version, digest=info.digest,
                       signature=info.signature, key_id=info.key_id,
                       catalog_version=info.manifest.catalog_version,
                       dbc_files=sorted(info.manifest.dbc), signals=info.signals,
                       created_by=info.created_by, created_at=info.created_at,
                       job_id=info.job_id, published_at=info.published_at)


@models_router.post("", response_model=VehicleModelOut, status_code=status.HTTP_201_CREATED, summary="Register a vehicle model (the twins' model it covers)")
def post_model(body: VehicleModelIn, principal: Writer, context: Context,
               request: Request) -> VehicleModelOut:
    """Register a vehicle model (the twins' ``model`` it covers)."""
    with context.database.session() as session:
        model = create_vehicle_model(session, principal.tenant, body.model_id, name=body.name,
                                     actor=principal.client_id,
                                     request_id=request_id_of(request))
    return _model_out(model)


@models_router.get("", response_model=list[VehicleModelOut], summary="The tenant's vehicle models")
def get_models(principal: Reader, context: Context) -> list[VehicleModelOut]:
    """The tenant's vehicle models."""
    with context.database.session() as session:
        return [_model_out(m) for m in list_vehicle_models(session, principal.tenant)]


@models_router.post("/{model_id}/manifests", response_model=ManifestOut,
                    status_code=status.HTTP_201_CREATED, summary="Write the model's next decoder manifest, checked and signed with the cloud key")
def post_manifest(model_id: str, body: ManifestIn, principal: Writer, context: Context,
                  request: Request) -> ManifestOut:
    """Write the model's next decoder manifest, checked and signed with the cloud key."""
    key = cloud_signing_key(context.settings)
    with context.database.session() as session:
        info = add_manifest(session, principal.tenant, model_id, dbc=body.dbc, main=body.main,
                            signal_map=body.signal_map, catalog_version=body.catalog_version,
                            key=key, actor=principal.client_id,
                            request_id=request_id_of(request))
    return _manifest_out(info)


@models_router.get("/{model_id}/manifests", response_model=list[ManifestOut], summary="The model's manifest versions")
def get_manifests(model_id: str, principal: Reader, context: Context) -> list[ManifestOut]:
    """The model's manifest versions."""
    with context.database.session() as session:
        return [_manifest_out(i) for i in list_manifests(session, principal.tenant, model_id)]


@models_router.post("/{model_id}/manifests/{version}/publish", response_model=JobOut, summary='Send a manifest to every vehicle of the model')
def post_publish(model_id: str, version: VersionNumber, principal: Writer, context: Context,
                 request: Request) -> JobOut:
    """Send a manifest to every vehicle of the model; follow it as a job (GET /v1/jobs/{id})."""
    with context.database.session() as session:
        job = publish_manifest(session, principal.tenant, model_id, version,
                               actor=principal.client_id, request_id=request_id_of(request))
    return JobOut.of(job)
