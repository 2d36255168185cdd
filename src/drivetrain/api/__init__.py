"""The HTTP API: one FastAPI app composed of one router per domain.

Public surface: :func:`create_app`, :func:`require_scopes` (the auth dependency every
protected route uses), :data:`ROUTERS` (where domains register their routers) and
:class:`ApiContext`/:func:`api_context` (settings, database and token key for handlers).
"""

from drivetrain.api.app import create_app
from drivetrain.api.context import ApiContext, api_context
from drivetrain.api.routers import ROUTERS, include_routers
from drivetrain.api.security import require_scopes

__all__ = ["ROUTERS", "ApiContext", "api_context", "create_app", "include_routers", "require_scopes"]
