"""What every request handler may reach: settings, the database and the token key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drivetrain.cloud.infra import BootstrapCredentials, Database, TokenKey
from drivetrain.cloud.infra.http.guards import ApiGuards
from drivetrain.core.settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
_MAX_REQUEST_ID = 80


@dataclass(frozen=True, slots=True)
class ApiContext:
    """The application's collaborators, built once by ``create_app``."""

    settings: Settings
    database: Database
    token_key: TokenKey = field(repr=False)
    bootstrap: BootstrapCredentials | None = None
    #: Rate limits and stream caps; ``create_app`` builds them from the settings.
    guards: ApiGuards = field(default_factory=ApiGuards.with_defaults)


def api_context(request: Request) -> ApiContext:
    """The :class:`ApiContext` of the app serving ``request``."""
    context = request.app.state.drivetrain
    if not isinstance(context, ApiContext):  # pragma: no cover - wiring bug
        raise TypeError("app.state.drivetrain is not an ApiContext; build the app with create_app")
    return context


def _clean_request_id(value: str | None) -> str:
    # Accept a caller's id only if it is short and printable; otherwise mint one.
    if value and len(value) <= _MAX_REQUEST_ID and value.isascii() and value.isprintable():
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Gives every request an id (``X-Request-ID`` in, or a new one) echoed on the response.

    The id lands in ``request.state.request_id`` so audit entries and error bodies can quote it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(REQUEST_ID_HEADER.lower().encode("latin-1"))
        request_id = _clean_request_id(raw.decode("latin-1") if raw else None)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.lower().encode("latin-1"), request_id.encode("latin-1")),
                ]
            await send(message)

        await self.app(scope, receive, send_with_id)
