"""The console's routes: the page at ``/`` and its assets under :data:`CONSOLE_ASSETS_URL`.

The console is one HTML page whose scripts (ES modules shipped in ``static/``) sign in with
client credentials and call the API with the bearer token, so every read and action is
authorized exactly as for any other client. The token lives in the tab's ``sessionStorage``
and travels only in the ``Authorization`` header — no cookie, so no cross-site request can
act with it.

Every console response carries a Content-Security-Policy that lets the page load and connect
to its own origin only: the console cannot fetch anything from outside the host, even by
mistake, and injected markup cannot run scripts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Where the console's scripts and styles are served.
CONSOLE_ASSETS_URL: Final = "/console"
STATIC_DIR: Final = Path(__file__).parent / "static"
#: Same origin only; images may be data: URLs (the chart's CSV/PNG downloads use blobs).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HEADERS: Final = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class _SecurityHeaders:
    """Adds the console's security headers to every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_console(app: FastAPI) -> None:
    """Serve the console at ``/`` (and ``/console/`` redirects there)."""
    page_headers = {name.decode(): value.decode() for name, value in _HEADERS}

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def console_page() -> FileResponse:
        # Never cached, so a new version of the console shows at once.
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html",
            headers={"Cache-Control": "no-cache", **page_headers},
        )

    @app.get(f"{CONSOLE_ASSETS_URL}/", include_in_schema=False)
    def console_folder() -> RedirectResponse:
        return RedirectResponse("/", status_code=308)

    app.mount(
        CONSOLE_ASSETS_URL,
        _SecurityHeaders(StaticFiles(directory=STATIC_DIR)),
        name="console",
    )
