"""The operations console and the offline API docs, served by the API app.

Public surface:

- :func:`install_console` — the console at ``/`` (one HTML page and its scripts, shipped in
  this package). The console is a client of the public API: it signs in at
  ``/v1/auth/token`` and every read and action goes through the same routes, scopes and
  tenant checks as any other client.
- :func:`install_offline_docs` — Swagger UI at ``/docs`` and ReDoc at ``/redoc`` from files
  shipped in the ``fastapi-offline`` package, so both work without internet.

Nothing here imports a domain: the console only speaks HTTP to the API.
"""

from drivetrain.web.console import CONSOLE_ASSETS_URL, install_console
from drivetrain.web.docs import install_offline_docs

__all__ = ["CONSOLE_ASSETS_URL", "install_console", "install_offline_docs"]
