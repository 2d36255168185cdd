"""The HTTP API app: one FastAPI app assembled from one router per domain.

Public surface: :func:`create_app` and :data:`ROUTERS` (where domains register their routers).
The plumbing routers share (request context, :func:`require_scopes`, problem responses) lives
below the domains in :mod:`drivetrain.cloud.infra.http`.
"""

from drivetrain.api.app import create_app
from drivetrain.api.routers import ROUTERS, include_routers

__all__ = ["ROUTERS", "create_app", "include_routers"]
