"""The infra domain's public functions: tenants, API clients and access tokens.

Every function takes an open :class:`~sqlalchemy.orm.Session` (from
:meth:`Database.session`), so a caller can combine several changes and their audit entries in
one transaction. Every state change records one audit entry in the chain of the tenant whose
resources changed. Errors are from the Drivetrain tree; nothing from SQLAlchemy escapes
(:meth:`Database.session` translates what the database raises).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.infra.audit import record_audit
from drivetrain.cloud.infra.auth import (
    ROLE_SCOPES,
    IssuedToken,
    Principal,
    Role,
    Scope,
    TokenKey,
    format_scopes,
    grant_scopes,
    issue_token,
    parse_scopes,
    split_container_scopes,
)
from drivetrain.cloud.infra.credentials import (
    DUMMY_HASH,
    generate_secret,
    hash_secret,
    verify_secret,
)
from drivetrain.cloud.infra.models import ClientRow, TenantRow
from drivetrain.core.errors import (
    AuthenticationError,
    BadInputError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)

_TENANT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_NAME_CHARS = 200


@dataclass(frozen=True, slots=True)
class Tenant:
    """An isolation boundary: every resource and every token belongs to exactly one."""

    tenant_id: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Client:
    """An API client (principal) as stored, without its secret."""

    client_id: str
    tenant: str
    name: str
    role: Role
    scopes: frozenset[Scope]
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewClient:
    """A freshly created client and its secret: the only time the secret is available."""

    client: Client
    client_secret: str = field(repr=False)


def validate_tenant_id(tenant_id: str) -> str:
    """``tenant_id`` if it is a DNS-label-like slug; raises :class:`BadInputError` otherwise."""
    if not _TENANT_ID.match(tenant_id):
        raise BadInputError(
            f"tenant id {tenant_id!r} is invalid; expected 1-63 lower-case letters, digits or "
            "'-', starting and ending with a letter or digit"
        )
    return tenant_id


def _validate_name(kind: str, name: str) -> str:
    if not name.strip() or len(name) > MAX_NAME_CHARS:
        raise BadInputError(
            f"{kind} {name!r} is invalid; expected 1-{MAX_NAME_CHARS} non-blank characters"
        )
    return name


def _tenant(row: TenantRow) -> Tenant:
    return Tenant(tenant_id=row.tenant_id, display_name=row.display_name, created_at=row.created_at)


def _client(row: ClientRow) -> Client:
    return Client(
        client_id=row.client_id,
        tenant=row.tenant_id,
        name=row.name,
        role=Role(row.role),
        scopes=parse_scopes(row.scopes),
        disabled=row.disabled,
        created_at=row.created_at,
    )


# --- tenants -------------------------------------------------------------------------------------


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    """The tenant ``tenant_id``; raises :class:`NotFoundError` when there is none."""
    row = session.get(TenantRow, tenant_id)
    if row is None:
        raise NotFoundError(f"tenant {tenant_id!r} does not exist")
    return _tenant(row)


def list_tenants(session: Session) -> list[Tenant]:
    """Every tenant, by id."""
    return [_tenant(r) for r in session.scalars(select(TenantRow).order_by(TenantRow.tenant_id))]


def create_tenant(
    session: Session,
    tenant_id: str,
    *,
    display_name: str | None = None,
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> Tenant:
    """Create tenant ``tenant_id`` and record ``tenant.create`` in its audit chain.

    Raises :class:`BadInputError` for a malformed id or name and :class:`ConflictError` when
    the tenant exists.
    """
    validate_tenant_id(tenant_id)
    display_name = _validate_name("display name", display_name or tenant_id)
    if session.get(TenantRow, tenant_id) is not None:
        raise ConflictError(f"tenant {tenant_id!r} already exists")
    row = TenantRow(
        tenant_id=tenant_id, display_name=display_name, created_at=now or datetime.now(UTC)
    )
    session.add(row)
    session.flush()
    record_audit(
        session,
        tenant=tenant_id,
        actor=actor,
        action="tenant.create",
        target=f"tenant:{tenant_id}",
        details={"display_name": display_name},
        request_id=request_id,
        now=now,
    )
    return _tenant(row)


# --- clients -------------------------------------------------------------------------------------


def create_client(
    session: Session,
    *,
    tenant: str,
    role: Role,
    name: str | None = None,
    scopes: frozenset[Scope] | None = None,
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> NewClient:
    """Create an API client of ``role`` in ``tenant`` with a new random secret.

    ``scopes`` narrows what the client may request (default: the role's scopes). Records
    ``client.create``. Raises :class:`NotFoundError` for an unknown tenant and
    :class:`BadInputError` for scopes outside the role or a bad name.
    """
    get_tenant(session, tenant)
    allowed = ROLE_SCOPES[role]
    granted = allowed if scopes is None else scopes
    if not granted or granted - allowed:
        raise BadInputError(
            f"scopes {format_scopes(granted)!r} are not a non-empty subset of role "
            f"{role.value!r}'s scopes {format_scopes(allowed)!r}"
        )
    client_id = f"dtc_{secrets.token_hex(12)}"
    name = _validate_name("client name", name or f"{role.value} client")
    secret = generate_secret()
    row = ClientRow(
        client_id=client_id,
        tenant_id=tenant,
        name=name,
        role=role.value,
        scopes=format_scopes(granted),
        secret_hash=hash_secret(secret),
        disabled=False,
        created_at=now or datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    record_audit(
        session,
        tenant=tenant,
        actor=actor,
        action="client.create",
        target=f"client:{client_id}",
        details={"role": role.value, "name": name, "scopes": format_scopes(granted)},
        request_id=request_id,
        now=now,
    )
    return NewClient(client=_client(row), client_secret=secret)


def get_client(session: Session, tenant: str, client_id: str) -> Client:
    """Client ``client_id`` of ``tenant``; :class:`NotFoundError` if absent or another tenant's."""
    row = session.get(ClientRow, client_id)
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"client {client_id!r} does not exist in tenant {tenant!r}")
    return _client(row)


def list_clients(session: Session, tenant: str) -> list[Client]:
    """``tenant``'s clients by creation time; raises :class:`NotFoundError` for an unknown tenant."""
    get_tenant(session, tenant)
    query = (
        select(ClientRow)
        .where(ClientRow.tenant_id == tenant)
        .order_by(ClientRow.created_at, ClientRow.client_id)
    )
    return [_client(r) for r in session.scalars(query)]


def disable_client(
    session: Session,
    *,
    tenant: str,
    client_id: str,
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> Client:
    """Disable a client: it can no longer obtain tokens and its live tokens stop working.

    Records ``client.disable``. Raises :class:`NotFoundError` when ``tenant`` has no such
    client and :class:`ConflictError` when it is already disabled.
    """
    row = session.get(ClientRow, client_id)
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"client {client_id!r} does not exist in tenant {tenant!r}")
    if row.disabled:
        raise ConflictError(f"client {client_id!r} is already disabled")
    row.disabled = True
    session.flush()
    record_audit(
        session,
        tenant=tenant,
        actor=actor,
        action="client.disable",
        target=f"client:{client_id}",
        request_id=request_id,
        now=now,
    )
    return _client(row)


# --- tokens --------------------------------------------------------------------------------------


def authenticate_client(session: Session, client_id: str, client_secret: str) -> Client:
    """The enabled client whose secret is ``client_secret``.

    Raises :class:`AuthenticationError` with the same message for an unknown id, a wrong
    secret and a disabled client; the secret is hashed in every case so response time does
    not reveal which client ids exist.
    """
    row = session.get(ClientRow, client_id)
    matches = verify_secret(client_secret, row.secret_hash if row is not None else DUMMY_HASH)
    if row is None or not matches or row.disabled:
        raise AuthenticationError(f"invalid client credentials for client {client_id!r}")
    return _client(row)


def issue_access_token(
    session: Session,
    *,
    client_id: str,
    client_secret: str,
    requested_scopes: str | None,
    key: TokenKey,
    ttl_s: int,
    now: datetime | None = None,
) -> IssuedToken:
    """OAuth2 client-credentials grant (RFC 6749 §4.4): authenticate, then sign a token.

    ``requested_scopes`` is the space-separated ``scope`` parameter; empty means all the
    client may have. Raises :class:`AuthenticationError` for bad credentials,
    :class:`BadInputError` for unknown scope names and :class:`PermissionDeniedError` for
    scopes beyond the client's.
    """
    client = authenticate_client(session, client_id, client_secret)
    plain, containers = split_container_scopes(requested_scopes)
    if containers and client.role is not Role.THIRD_PARTY_APP:
        raise PermissionDeniedError(
            f"client {client.client_id!r} (role {client.role.value!r}) may not request "
            f"container scopes; only third-party apps read Data Act containers")
    granted = grant_scopes(parse_scopes(plain), client.scopes, client.client_id)
    return issue_token(
        client_id=client.client_id,
        tenant=client.tenant,
        role=client.role,
        scopes=granted,
        key=key,
        now=now or datetime.now(UTC),
        ttl_s=ttl_s,
        containers=containers,
    )


def ensure_principal_active(session: Session, principal: Principal) -> None:
    """Refuse a valid token whose client was disabled, removed or moved since it was issued,
    or whose role or scopes are not (or no longer) the client's.

    The token's signature only proves the signing secret made it; the client's row is the
    authority on what it may do now, so a token re-signed with a leaked secret cannot act as
    more than its client, and lowering a client's role takes effect on its next request.

    Raises :class:`AuthenticationError`.
    """
    row = session.get(ClientRow, principal.client_id)
    if row is None or row.disabled or row.tenant_id != principal.tenant:
        raise AuthenticationError(
            f"access token of client {principal.client_id!r} is no longer valid "
            "(client disabled or removed)"
        )
    if row.role != principal.role.value:
        raise AuthenticationError(
            f"access token of client {principal.client_id!r} claims role "
            f"{principal.role.value!r}; the client's role is {row.role!r}"
        )
    beyond = principal.scopes - parse_scopes(row.scopes)
    if beyond:
        raise AuthenticationError(
            f"access token of client {principal.client_id!r} claims scope(s) "
            f"{format_scopes(beyond)!r} the client does not have"
        )
