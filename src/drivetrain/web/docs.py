"""Swagger UI and ReDoc from files shipped in a package, so ``/docs`` works offline.

FastAPI's own docs pages load Swagger UI and ReDoc from a CDN; on a host without internet they
stay blank. The ``fastapi-offline`` package ships the same dist files (MIT/Apache-2.0, with
their licences); they are mounted here and the pages point at them. Swagger UI's online
validator badge is switched off, so nothing leaves the host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

#: Where the Swagger UI and ReDoc files are served.
DOCS_ASSETS_URL: Final = "/docs-assets"
#: The pages may load from and talk to this host only (ReDoc's footer would otherwise load
#: its logo from a CDN); their bootstrap scripts are inline, and ReDoc searches in a worker.
DOCS_CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _same_host_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
    return page


def _dist_directory() -> Path:
    # Located through the package rather than imported for its FastAPI factory: only its
    # static files are used.
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install_offline_docs(
    app: FastAPI, *, openapi_url: str, docs_url: str = "/docs", redoc_url: str = "/redoc"
) -> None:
    """Serve Swagger UI at ``docs_url`` and ReDoc at ``redoc_url`` for ``openapi_url``.

    Build ``app`` with ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages stay off.
    """
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=_dist_directory()), name="docs-assets")
    redirect_url = app.swagger_ui_oauth2_redirect_url or f"{docs_url}/oauth2-redirect"
    title = app.title

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _same_host_only(get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            # null: no badge fetched from the public validator service
            swagger_ui_parameters={"validatorUrl": None},
        ))

    @app.get(redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _same_host_only(get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        ))
