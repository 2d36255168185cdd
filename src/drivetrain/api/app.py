"""``create_app``: the Drivetrain HTTP API as one FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from drivetrain import __version__
from drivetrain.api.metrics import ApiMetrics, ObservedRequests
from drivetrain.api.openapi import install_openapi
from drivetrain.api.probes import default_readiness
from drivetrain.api.routers import include_routers
from drivetrain.cloud.infra import (
    Database,
    ensure_embedded_bootstrap,
    open_database,
    resolve_token_key,
)
from drivetrain.cloud.infra.bootstrap import resolve_audit_key
from drivetrain.cloud.infra.http.context import ApiContext, RequestIdMiddleware
from drivetrain.cloud.infra.http.guards import ApiGuards
from drivetrain.cloud.infra.http.problems import install_error_handlers
from drivetrain.cloud.infra.metrics_access import MetricsAccess
from drivetrain.core.settings import Settings
from drivetrain.web import install_console, install_offline_docs

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"


def create_app(settings: Settings, database: Database | None = None) -> FastAPI:
    """Build the API for ``settings``: migrate, resolve the token key, mount every router,
    the offline API docs (``/docs``, ``/redoc``), the operations console (``/``), the probes
    (``/livez``, ``/readyz``: ``app.state.readiness``) and ``/metrics`` (``app.state.metrics``).

    ``database`` defaults to :func:`open_database` (closed when the app shuts down; a given
    one stays the caller's). Migrations run here (idempotent), and in the embedded
    deployment the bootstrap admin is ensured (its credentials file path is on
    ``app.state.drivetrain.bootstrap``). Raises :class:`ConfigurationError` for unusable
    settings and :class:`StorageError` when the database cannot be migrated.
    """
    owned = database is None
    db = database if database is not None else open_database(settings)
    db.upgrade()
    token_key = resolve_token_key(settings)
    if db.audit_key is None:  # a database handed in without one: the deployment's key
        db.use_audit_key(resolve_audit_key(settings))
    bootstrap = (
        ensure_embedded_bootstrap(settings, db) if settings.deployment == "embedded" else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            db.dispose()

    app = FastAPI(
        title="Drivetrain API",
        version=__version__,
        summary="Open, self-hostable cloud for software-defined vehicles",
        openapi_url=OPENAPI_URL,
        # FastAPI's own docs pages load their scripts from a CDN: the offline ones below
        # replace them.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.drivetrain = ApiContext(
        settings=settings, database=db, guards=ApiGuards.from_settings(settings),
        token_key=token_key, bootstrap=bootstrap,
    )
    # Readiness checks (``/readyz``); ``drivetrain serve`` adds its vehicle link's.
    app.state.readiness = default_readiness(settings, db)
    token = settings.metrics_token
    app.state.metrics = ApiMetrics(
        db, MetricsAccess(token.get_secret_value() if token is not None else None))
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(ObservedRequests, metrics=app.state.metrics)  # outermost: times all
    include_routers(app)
    install_openapi(app)
    install_offline_docs(app, openapi_url=OPENAPI_URL, docs_url=DOCS_URL, redoc_url=REDOC_URL)
    install_console(app)
    return app
