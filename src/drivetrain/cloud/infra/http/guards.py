"""Per-process guards of the API against exhaustion: how often the token endpoint may be
asked (per remote address, and failures per client id), how many requests one client may make
to the routes that need a token, and how many server-sent-event streams a client and a tenant
may hold open. Built once from the settings by ``create_app``."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from drivetrain.cloud.infra.auth import Principal
from drivetrain.cloud.infra.ratelimit import SlidingWindowLimit
from drivetrain.core.errors import RateLimitedError
from drivetrain.core.settings import Settings

_MINUTE_S = 60.0


class StreamSlots:
    """Counts open streams per client and per tenant; refuses one past either cap."""

    def __init__(self, per_client: int, per_tenant: int) -> None:
        self.per_client, self.per_tenant = per_client, per_tenant
        self._clients: Counter[str] = Counter()
        self._tenants: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, principal: Principal) -> None:
        """Take a slot for ``principal``'s new stream.

        Raises:
            RateLimitedError: the client or its tenant already holds its cap of streams.
        """
        with self._lock:
            if self._clients[principal.client_id] >= self.per_client:
                raise RateLimitedError(
                    f"client {principal.client_id!r} already holds {self.per_client} open "
                    "event streams (api_streams_per_client); close one first", retry_after_s=5,
                )
            if self._tenants[principal.tenant] >= self.per_tenant:
                raise RateLimitedError(
                    f"tenant {principal.tenant!r} already holds {self.per_tenant} open event "
                    "streams (api_streams_per_tenant); close one first", retry_after_s=5,
                )
            self._clients[principal.client_id] += 1
            self._tenants[principal.tenant] += 1

    def release(self, principal: Principal) -> None:
        """Give back the slot :meth:`acquire` took."""
        with self._lock:
            for counter, key in ((self._clients, principal.client_id),
                                 (self._tenants, principal.tenant)):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]

    @property
    def total(self) -> int:
        """Streams open now, every client's."""
        with self._lock:
            return self._clients.total()


@dataclass
class ApiGuards:
    """The API's rate limits and stream caps."""

    token_requests: SlidingWindowLimit
    token_failures: SlidingWindowLimit
    streams: StreamSlots
    api_requests: SlidingWindowLimit

    @classmethod
    def with_defaults(cls) -> ApiGuards:
        """The guards of the default settings."""
        return cls.from_settings(Settings.model_construct())

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiGuards:
        return cls(
            token_requests=SlidingWindowLimit(settings.token_requests_per_minute, _MINUTE_S,
                                              what="token requests"),
            token_failures=SlidingWindowLimit(settings.token_failures_per_minute, _MINUTE_S,
                                              what="failed token requests for client"),
            streams=StreamSlots(settings.api_streams_per_client, settings.api_streams_per_tenant),
            api_requests=SlidingWindowLimit(settings.api_requests_per_minute, _MINUTE_S,
                                            what="API requests"),
        )
