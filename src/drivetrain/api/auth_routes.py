"""``/v1/auth``: the OAuth2 token endpoint and ``whoami``."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Form, Request, Response

from drivetrain.api.schemas import TokenResponse, WhoAmI
from drivetrain.cloud.infra import Principal, issue_access_token
from drivetrain.cloud.infra.auth import format_containers, format_scopes
from drivetrain.cloud.infra.http.context import ApiContext, api_context
from drivetrain.cloud.infra.http.security import require_scopes
from drivetrain.core.errors import AuthenticationError, BadInputError

router = APIRouter(tags=["auth"])


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    # RFC 6749 §2.3.1: client_secret_basic, form-urlencoded id and secret in HTTP Basic.
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise AuthenticationError("malformed HTTP Basic client credentials") from e
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise AuthenticationError("malformed HTTP Basic client credentials (no ':')")
    return unquote(client_id), unquote(secret)


@router.post(
    "/token",
    response_model=TokenResponse,
    summary="OAuth2 client-credentials grant",
    responses={
        401: {"description": "Bad client credentials"},
        403: {"description": "Scope refused"},
        429: {"description": "Too many token requests from this address, or too many "
              "failed ones for this client id"},
    },
)
def token(
    request: Request,
    response: Response,
    context: Annotated[ApiContext, Depends(api_context)],
    grant_type: Annotated[str, Form(description="Must be 'client_credentials'.")],
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form(description="Space-separated scopes; default all.")] = None,
) -> TokenResponse:
    """Exchange client credentials (form fields or HTTP Basic) for a bearer access token.

    Asking for a scope the client may not have is refused (403), never silently trimmed.
    Credentials in HTTP Basic and a different form ``client_id`` (or a form secret as well)
    are refused (RFC 6749 §2.3: one authentication method per request). Each remote address
    may ask ``token_requests_per_minute`` times a minute, and a client id failing
    ``token_failures_per_minute`` times a minute is refused until the minute has passed (429).
    """
    guards, now = context.guards, time.monotonic()
    guards.token_requests.hit(request.client.host if request.client else "unknown", now)
    if grant_type != "client_credentials":
        raise BadInputError(f"unsupported grant_type {grant_type!r}; expected 'client_credentials'")
    basic = _basic_credentials(request)
    if basic is not None:
        if client_id is not None and client_id != basic[0]:
            raise AuthenticationError(
                f"form client_id {client_id!r} differs from the HTTP Basic client "
                f"{basic[0]!r}; send the credentials one way"
            )
        if client_secret is not None:
            raise AuthenticationError(
                "client credentials sent both as HTTP Basic and as form fields; send them one "
                "way (RFC 6749 §2.3)"
            )
        client_id, client_secret = basic
    if not client_id or not client_secret:
        raise AuthenticationError(
            "client credentials missing: send client_id and client_secret as form fields "
            "or HTTP Basic"
        )
    guards.token_failures.check(client_id, now)
    try:
        with context.database.session() as session:
            issued = issue_access_token(
                session,
                client_id=client_id,
                client_secret=client_secret,
                requested_scopes=scope,
                key=context.token_key,
                ttl_s=context.settings.token_ttl_s,
            )
    except AuthenticationError:
        guards.token_failures.record(client_id, now)
        raise
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in_s,
        scope=" ".join(s for s in (format_scopes(issued.scopes),
                                   format_containers(issued.containers)) if s),
    )


@router.get("/whoami", response_model=WhoAmI, summary="The verified caller")
def whoami(principal: Annotated[Principal, require_scopes()]) -> WhoAmI:
    """The client, tenant, role and scopes of the presented token."""
    return WhoAmI.of(principal)
