"""Server-sent event streams (``/v1/twins/changes``, ``/v1/jobs/changes``,
``/v1/campaigns/changes``): one helper so every domain's stream behaves alike.

Each event is ``event: <kind>`` with a JSON ``data`` line; ``event: overflow`` says how many
events this stream lost by falling behind; a comment line keeps an idle connection open. The
stream ends after ``max_events`` events, after ``timeout_s`` seconds, when the caller's token
expires or its client is disabled or loses the rights it had (re-checked every
``PRINCIPAL_RECHECK_S`` seconds), or when the client goes away.

Streams wait on the event loop (:meth:`WaitQueue.next_batch`), never in a worker thread, so
open streams do not take the threads ordinary requests run in; each client may hold
``api_streams_per_client`` of them and each tenant ``api_streams_per_tenant`` (429 past
either).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import anyio.to_thread
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from drivetrain.cloud.infra.auth import Principal
from drivetrain.cloud.infra.bus import StatusEvent, StatusSubscription
from drivetrain.cloud.infra.http.context import api_context
from drivetrain.cloud.infra.service import ensure_principal_active
from drivetrain.cloud.infra.waitqueue import WaitQueue
from drivetrain.core.errors import AuthenticationError

T = TypeVar("T")
#: Seconds between keep-alive comments on an idle stream.
KEEPALIVE_S: Final = 15.0
#: Seconds between re-checks of the caller's client (disabled, role or scopes lowered): a
#: stream outlives no revocation by more than this.
PRINCIPAL_RECHECK_S = 30.0
SSE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "Server-sent events", "content": {"text/event-stream": {"schema": {
        "type": "string", "contentMediaType": "text/event-stream",
        "description": "Events `id: N`, `event: KIND`, `data: {JSON of the status event}`; "
        "`event: overflow` with `data: {\"lost\": N}`; `event: revoked` when the caller's "
        "access ended."}}}},
    429: {"description": "The client or its tenant already holds its cap of open streams"},
}
#: What a stream sends for a batch of items: ``(event kind, JSON data)`` per kept item.
Render = Callable[[list[T]], Awaitable[list[tuple[str, Any]]]]


def sse_line(event: str, data: object, event_id: int | None = None) -> str:
    """One server-sent event."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _SlotHoldingStream(StreamingResponse):
    """A streaming response that gives its stream slot back once it has been served, however
    it ends (finished, client gone, cancelled)."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def event_stream(
    request: Request,
    principal: Principal,
    queue: WaitQueue[T],
    render: Render[T],
    *,
    close: Callable[[], None],
    max_events: int | None = None,
    timeout_s: float | None = None,
) -> StreamingResponse:
    """Stream what ``render`` makes of ``queue``'s batches to ``principal``.

    Raises:
        RateLimitedError: the client or its tenant already holds its cap of streams (the
            queue is closed).
    """
    context = api_context(request)
    slots = context.guards.streams
    try:
        slots.acquire(principal)
    except BaseException:
        close()
        raise
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            close()
            slots.release(principal)

    token_left_s = (principal.expires_at - datetime.now(UTC)).total_seconds()
    limit_s = token_left_s if timeout_s is None else min(timeout_s, token_left_s)
    deadline = time.monotonic() + max(0.0, limit_s)

    def still_valid() -> bool:
        try:
            with context.database.session() as session:
                ensure_principal_active(session, principal)
        except AuthenticationError:
            return False
        return True

    async def events() -> AsyncIterator[str]:
        sent, lost, idle_since = 0, 0, time.monotonic()
        checked_at = time.monotonic()
        try:
            yield ": connected\n\n"
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    return
                if time.monotonic() - checked_at >= PRINCIPAL_RECHECK_S:
                    checked_at = time.monotonic()
                    if not await anyio.to_thread.run_sync(still_valid):
                        yield sse_line("revoked", {"detail": "the client's access ended"})
                        return
                wait = max(0.0, min(1.0, deadline - time.monotonic()))
                batch = await queue.next_batch(wait)
                if queue.overflowed > lost:
                    yield sse_line("overflow", {"lost": queue.overflowed - lost})
                    lost = queue.overflowed
                if not batch:
                    if time.monotonic() - idle_since > KEEPALIVE_S:
                        idle_since = time.monotonic()
                        yield ": keep-alive\n\n"
                    continue
                for kind, data in await render(batch):
                    sent += 1
                    idle_since = time.monotonic()
                    yield sse_line(kind, data, event_id=sent)
                    if kind == "revoked":  # the renderer found the caller's access ended
                        return
                    if max_events is not None and sent >= max_events:
                        return
        finally:
            release()

    return _SlotHoldingStream(events(), release)


def status_stream(
    request: Request,
    principal: Principal,
    subscription: StatusSubscription,
    *,
    keep: Callable[[StatusEvent], bool] = lambda _e: True,
    max_events: int | None = None,
    timeout_s: float | None = None,
) -> StreamingResponse:
    """Stream ``subscription``'s events that ``keep`` accepts (closes it when done)."""

    async def render(batch: list[StatusEvent]) -> list[tuple[str, Any]]:
        out = []
        for status in batch:
            if keep(status):
                data = status.to_dict()
                del data["origin"]
                out.append((status.kind, data))
        return out

    return event_stream(request, principal, subscription, render, close=subscription.close,
                        max_events=max_events, timeout_s=timeout_s)
