"""HTTP plumbing every domain's router shares: request context, scope checks, problem responses.

It sits below the domains (``cloud/<domain>/api.py`` import it) and below :mod:`drivetrain.api`,
the app that assembles their routers, so the dependency arrow runs one way.

Public surface:

- :class:`ApiContext`, :func:`api_context`, :data:`Context` — settings, database and token key
  for handlers (``context: Context`` in a route's signature).
- :func:`require_scopes` — the auth dependency every protected route uses.
- :data:`Instant` — a datetime parameter within the range every store can hold (else 422).
- :data:`MAX_STORED_INT` — the largest integer a request may carry as an id, offset or version
  (the 64-bit columns they are compared with), so a larger one is a 422, not a database error.
- :func:`problem_response`, :func:`request_id_of`, :func:`status_for`,
  :func:`install_error_handlers` — the one mapping from errors to RFC 9457 responses.
"""

from typing import Annotated, Final

from fastapi import Depends

from drivetrain.cloud.infra.http.context import (
    REQUEST_ID_HEADER,
    ApiContext,
    RequestIdMiddleware,
    api_context,
)
from drivetrain.cloud.infra.http.params import Instant
from drivetrain.cloud.infra.http.problems import (
    install_error_handlers,
    problem_response,
    request_id_of,
    status_for,
)
from drivetrain.cloud.infra.http.security import require_scopes

MAX_STORED_INT: Final = 2**63 - 1

#: The request's :class:`ApiContext` as a route parameter type: ``def route(context: Context)``.
Context = Annotated[ApiContext, Depends(api_context)]

__all__ = [
    "MAX_STORED_INT",
    "REQUEST_ID_HEADER",
    "ApiContext",
    "Context",
    "Instant",
    "RequestIdMiddleware",
    "api_context",
    "install_error_handlers",
    "problem_response",
    "request_id_of",
    "require_scopes",
    "status_for",
]
