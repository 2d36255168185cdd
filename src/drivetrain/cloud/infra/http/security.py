"""Bearer-token authentication and scope/tenant authorization as FastAPI dependencies.

A thin shell: the decisions are :func:`drivetrain.cloud.infra.verify_token` and
:func:`drivetrain.cloud.infra.authorize`. Use :func:`require_scopes` on every protected route::

    @router.get("/{tenant}/vehicles")
    def list_vehicles(tenant: str, principal: Annotated[Principal, require_scopes(Scope.FLEET_READ)]):
        ...

A route whose path has a ``{tenant}`` parameter is tenant-checked automatically: a token of
another tenant gets 403.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import HTTPConnection

from drivetrain.cloud.infra import (
    Principal,
    Scope,
    authorize,
    ensure_principal_active,
    parse_scopes,
    verify_token,
)
from drivetrain.cloud.infra.auth import SCOPE_DESCRIPTIONS
from drivetrain.cloud.infra.http.context import api_context
from drivetrain.core.errors import AuthenticationError

TOKEN_URL = "/v1/auth/token"
TENANT_PATH_PARAM = "tenant"


class BearerToken(OAuth2):
    """Reads ``Authorization: Bearer <token>``; documents the client-credentials flow in OpenAPI."""

    def __init__(self) -> None:
        super().__init__(
            flows=OAuthFlows(
                clientCredentials=OAuthFlowClientCredentials(
                    tokenUrl=TOKEN_URL,
                    scopes={s.value: d for s, d in SCOPE_DESCRIPTIONS.items()},
                )
            ),
            scheme_name="OAuth2ClientCredentials",
            description="OAuth2 client-credentials grant; send the token as a Bearer token.",
            auto_error=False,
        )

    async def __call__(self, request: HTTPConnection) -> str | None:
        scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() != "bearer" or not token:
            return None
        return token


bearer_token = BearerToken()


def authenticated_principal(
    security_scopes: SecurityScopes,
    request: Request,
    token: str | None = Depends(bearer_token),
) -> Principal:
    """The caller, verified and authorized for the route's scopes and ``{tenant}``.

    Raises :class:`AuthenticationError` (401) for a missing, invalid, expired or revoked
    token, :class:`RateLimitedError` (429) for a client past ``api_requests_per_minute`` and
    :class:`PermissionDeniedError` (403) for a missing scope or a foreign tenant.
    """
    if token is None:
        raise AuthenticationError(
            f"missing bearer token: send 'Authorization: Bearer <token>' (get one from "
            f"POST {TOKEN_URL})"
        )
    context = api_context(request)
    principal = verify_token(token, context.token_key, datetime.now(UTC))
    # Counted per client id once the signature holds: an invented token costs its sender a 401,
    # never another client's budget. One request may resolve the principal more than once
    # (a route and its dependencies); it is counted once.
    if not getattr(request.state, "rate_counted", False):
        context.guards.api_requests.hit(principal.client_id, time.monotonic())
        request.state.rate_counted = True
    with context.database.session() as session:
        ensure_principal_active(session, principal)
    tenant = request.path_params.get(TENANT_PATH_PARAM)
    authorize(principal, parse_scopes(security_scopes.scopes), tenant=tenant)
    return principal


def require_scopes(*scopes: Scope) -> Any:
    """A dependency giving the :class:`Principal`, requiring every scope in ``scopes``.

    Use as ``principal: Annotated[Principal, require_scopes(Scope.AUDIT_READ)]``. With no
    scopes it only requires a valid token (and the tenant check on ``{tenant}`` paths).
    """
    return Security(authenticated_principal, scopes=[Scope(s).value for s in scopes])
