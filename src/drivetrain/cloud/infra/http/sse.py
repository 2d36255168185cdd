"""Server-sent event streams of the platform status bus (``/v1/jobs/changes``,
``/v1/campaigns/changes``): one helper so every domain's stream behaves alike.

Each event is ``event: <kind>`` with a JSON ``data`` line (the status event without its
origin); ``event: overflow`` says how many events this stream lost by falling behind; a
comment line keeps an idle connection open. The stream ends after ``max_events`` events,
after ``timeout_s`` seconds, or when the client goes away.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse

from drivetrain.cloud.infra.bus import StatusEvent, StatusSubscription

#: Seconds between keep-alive comments on an idle stream.
KEEPALIVE_S: Final = 15.0
SSE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {"text/event-stream": {"schema": {
        "type": "string", "contentMediaType": "text/event-stream",
        "description": "Events `id: N`, `event: KIND`, `data: {JSON of the change}`; "
                       "`event: overflow` with `data: {\"lost\": N}` when events were dropped.",
    }}}, "description": "Server-sent events"}
}


def sse_line(event: str, data: object, event_id: int | None = None) -> str:
    """One server-sent event."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def status_stream(
    request: Request,
    subscription: StatusSubscription,
    *,
    keep: Callable[[StatusEvent], bool] = lambda _e: True,
    max_events: int | None = None,
    timeout_s: float | None = None,
) -> StreamingResponse:
    """Stream ``subscription``'s events that ``keep`` accepts (closes it when done)."""
    deadline = time.monotonic() + timeout_s if timeout_s is not None else None

    async def events() -> AsyncIterator[str]:
        sent, lost, idle_since = 0, 0, time.monotonic()
        try:
            yield ": connected\n\n"
            while deadline is None or time.monotonic() < deadline:
                if await request.is_disconnected():
                    return
                wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
                batch = await anyio.to_thread.run_sync(subscription.get_batch, wait)
                if subscription.overflowed > lost:
                    yield sse_line("overflow", {"lost": subscription.overflowed - lost})
                    lost = subscription.overflowed
                if not batch and time.monotonic() - idle_since > KEEPALIVE_S:
                    idle_since = time.monotonic()
                    yield ": keep-alive\n\n"
                for status in batch:
                    if not keep(status):
                        continue
                    sent += 1
                    idle_since = time.monotonic()
                    data = status.to_dict()
                    del data["origin"]
                    yield sse_line(status.kind, data, event_id=sent)
                    if max_events is not None and sent >= max_events:
                        return
        finally:
            subscription.close()

    return StreamingResponse(
        events(), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
