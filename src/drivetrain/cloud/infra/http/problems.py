"""The one mapping from Drivetrain errors to HTTP responses (RFC 9457 problem details).

Every error response of the API is ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail`` (the error's own message) and ``request_id``; validation errors add
``errors`` naming each bad field. The most specific class in :data:`STATUS_BY_ERROR` wins, so
a new subclass inherits its parent's status without touching this file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from drivetrain.core.errors import (
    AuthenticationError,
    AuthError,
    BadInputError,
    ConfigurationError,
    ConflictError,
    DrivetrainError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    StorageError,
    TransportError,
    VerificationError,
)

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)

# Status and title per failure domain. Looked up along the exception's MRO.
STATUS_BY_ERROR: dict[type[DrivetrainError], tuple[int, str]] = {
    PayloadTooLargeError: (413, "Content too large"),
    BadInputError: (422, "Bad input"),
    VerificationError: (422, "Verification failed"),
    AuthenticationError: (401, "Authentication required"),
    PermissionDeniedError: (403, "Permission denied"),
    AuthError: (403, "Access denied"),
    NotFoundError: (404, "Not found"),
    ConflictError: (409, "Conflict"),
    RateLimitedError: (429, "Too many requests"),
    StorageError: (503, "Storage unavailable"),
    TransportError: (503, "Transport unavailable"),
    ConfigurationError: (500, "Server misconfigured"),
    DrivetrainError: (500, "Drivetrain error"),
}


def status_for(error: DrivetrainError) -> tuple[int, str]:
    """HTTP status and title for ``error``: its nearest class in :data:`STATUS_BY_ERROR`."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return STATUS_BY_ERROR[DrivetrainError]


def _type_uri(name: str) -> str:
    return f"urn:drivetrain:error:{name}"


def request_id_of(request: Request) -> str | None:
    """The request id the middleware assigned (``X-Request-ID``), if any."""
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


def problem_response(
    request: Request,
    *,
    status: int,
    title: str,
    detail: str,
    type_name: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An RFC 9457 problem+json response."""
    body: dict[str, Any] = {
        "type": _type_uri(type_name),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request_id_of(request),
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def drivetrain_error_response(request: Request, error: DrivetrainError) -> JSONResponse:
    """The response for a Drivetrain error (401s carry ``WWW-Authenticate: Bearer``)."""
    status, title = status_for(error)
    headers = None
    if isinstance(error, AuthenticationError):
        # RFC 6750 §3: a 401 names the scheme; error="invalid_token" when one was presented.
        presented = request.headers.get("authorization", "").lower().startswith("bearer ")
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"' if presented else "Bearer"}
    elif isinstance(error, RateLimitedError):
        headers = {"Retry-After": str(error.retry_after_s)}  # RFC 9110 §10.2.3
    if status >= 500:
        log.error("request %s failed: %s", request_id_of(request), error, exc_info=error)
    return problem_response(
        request,
        status=status,
        title=title,
        detail=str(error),
        type_name=type(error).__name__,
        headers=headers,
    )


def _field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    out = []
    for err in errors:
        location = [str(part) for part in err.get("loc", ())]
        message = str(err.get("msg", ""))
        # Quote the offending value, except anything that may be a credential.
        if "input" in err and not any("secret" in part or "password" in part for part in location):
            shown = repr(err["input"])
            message += f" (got {shown[:77] + '...' if len(shown) > 80 else shown})"
        out.append({"field": ".".join(location), "message": message})
    return out


async def _on_drivetrain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DrivetrainError)
    return drivetrain_error_response(request, exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = _field_errors(exc.errors())
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return problem_response(
        request,
        status=422,
        title="Bad input",
        detail=f"request validation failed: {summary}",
        type_name="RequestValidationError",
        extra={"errors": fields},
    )


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(
        request,
        status=exc.status_code,
        title=str(exc.detail),
        detail=f"{request.method} {request.url.path}: {exc.detail}",
        type_name=f"http{exc.status_code}",
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Not a Drivetrain error: a bug. Log it with the traceback; tell the caller which
    # request failed and of what kind, without internals.
    log.error("request %s crashed", request_id_of(request), exc_info=exc)
    return problem_response(
        request,
        status=500,
        title="Internal error",
        detail=f"internal error ({type(exc).__name__}); quote request id "
        f"{request_id_of(request)} when reporting it",
        type_name="InternalError",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""
    app.add_exception_handler(DrivetrainError, _on_drivetrain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)
