"""``/v1/tenants``: tenants and their API clients (admin scope).

Tenants are created only by admins of the operator tenant (``default``); the response carries
the new tenant's first admin client, whose secret is shown once. From then on each tenant's
admins manage their own clients; no token reaches another tenant's clients.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, status

from drivetrain.api.schemas import (
    ClientCreate,
    ClientOut,
    NewClientOut,
    TenantCreate,
    TenantCreated,
    TenantOut,
)
from drivetrain.cloud.infra import (
    OPERATOR_TENANT,
    Principal,
    Role,
    Scope,
    create_client,
    create_tenant,
    disable_client,
    get_tenant,
    list_clients,
    list_tenants,
)
from drivetrain.cloud.infra.http import Context, request_id_of, require_scopes
from drivetrain.core.errors import PermissionDeniedError

router = APIRouter(tags=["tenants"])

Admin = Annotated[Principal, require_scopes(Scope.ADMIN)]


def _require_operator(principal: Principal) -> None:
    if principal.tenant != OPERATOR_TENANT:
        raise PermissionDeniedError(
            f"only admins of the operator tenant {OPERATOR_TENANT!r} manage tenants; "
            f"client {principal.client_id!r} belongs to {principal.tenant!r}"
        )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantCreated,
             summary="Create a tenant with its first admin client")
def post_tenant(
    body: TenantCreate, principal: Admin, context: Context, request: Request
) -> TenantCreated:
    """Create a tenant and its first admin client (operator admins only)."""
    _require_operator(principal)
    with context.database.session() as session:
        tenant = create_tenant(
            session,
            body.tenant_id,
            display_name=body.display_name,
            actor=principal.client_id,
            request_id=request_id_of(request),
        )
        admin = create_client(
            session,
            tenant=tenant.tenant_id,
            role=Role.ADMIN,
            name="tenant admin",
            actor=principal.client_id,
            request_id=request_id_of(request),
        )
    return TenantCreated(tenant=TenantOut.of(tenant), admin_client=NewClientOut.of_new(admin))


@router.get("", response_model=list[TenantOut], summary="List the tenants")
def get_tenants(principal: Admin, context: Context) -> list[TenantOut]:
    """Every tenant for operator admins; otherwise only the caller's own."""
    with context.database.session() as session:
        if principal.tenant == OPERATOR_TENANT:
            return [TenantOut.of(t) for t in list_tenants(session)]
        return [TenantOut.of(get_tenant(session, principal.tenant))]


@router.get("/{tenant}", response_model=TenantOut, summary="One tenant")
def get_one_tenant(
    tenant: str, principal: Annotated[Principal, require_scopes()], context: Context
) -> TenantOut:
    """The caller's own tenant."""
    with context.database.session() as session:
        return TenantOut.of(get_tenant(session, tenant))


@router.post("/{tenant}/clients", status_code=status.HTTP_201_CREATED, response_model=NewClientOut,
             summary="Create an API client (its secret is shown once)")
def post_client(
    tenant: str, body: ClientCreate, principal: Admin, context: Context, request: Request
) -> NewClientOut:
    """Create an API client in the caller's tenant; the secret is in this response only."""
    with context.database.session() as session:
        new = create_client(
            session,
            tenant=tenant,
            role=body.role,
            name=body.name,
            scopes=frozenset(body.scopes) if body.scopes is not None else None,
            actor=principal.client_id,
            request_id=request_id_of(request),
        )
    return NewClientOut.of_new(new)


@router.get("/{tenant}/clients", response_model=list[ClientOut],
            summary="List a tenant's API clients")
def get_clients(tenant: str, principal: Admin, context: Context) -> list[ClientOut]:
    """The caller's tenant's clients (never their secrets)."""
    with context.database.session() as session:
        return [ClientOut.of(c) for c in list_clients(session, tenant)]


@router.post("/{tenant}/clients/{client_id}/disable", response_model=ClientOut,
             summary="Disable an API client and its tokens")
def post_disable_client(
    tenant: str, client_id: str, principal: Admin, context: Context, request: Request
) -> ClientOut:
    """Disable a client: no new tokens, and its live tokens are refused from now on."""
    with context.database.session() as session:
        client = disable_client(
            session,
            tenant=tenant,
            client_id=client_id,
            actor=principal.client_id,
            request_id=request_id_of(request),
        )
    return ClientOut.of(client)
