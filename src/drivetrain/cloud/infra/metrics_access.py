"""Who may read a process's Prometheus metrics, and the small server workers expose them on.

The metrics name tenants, rollouts and refusal reasons, and their volume tells a competitor
how big a fleet is: they are not for everyone. The rule, the same for the API's ``/metrics``
and a worker's ``--metrics-port``:

- with ``metrics_token`` set (``DRIVETRAIN_METRICS_TOKEN``, at least 32 characters), a scrape
  must present it as ``Authorization: Bearer <token>`` (Prometheus:
  ``authorization: {credentials_file: ...}``), from any address;
- without it, only loopback clients may scrape (a Prometheus agent or sidecar on the same
  host or pod). Anything else is refused, so a deployment never exposes its metrics by
  forgetting a setting.

It is a separate token rather than an API access token with a scope because a scraper holds
it for months and reads nothing else: it can be rotated without touching any API client, and
it grants no access to vehicle data.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from drivetrain.core.errors import ConfigurationError

MIN_TOKEN_CHARS: Final = 32
Decision = Literal["allowed", "no_token", "wrong_token", "not_loopback"]


def is_loopback(host: str | None) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1, or an IPv4-mapped loopback)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@dataclass(frozen=True)
class MetricsAccess:
    """The scrape rule (see the module docstring); ``token`` None: loopback only."""

    token: str | None = None

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_CHARS:
            raise ConfigurationError(
                f"metrics_token must be at least {MIN_TOKEN_CHARS} characters, "
                f"got {len(self.token)}"
            )

    def decide(self, client_host: str | None, authorization: str | None) -> Decision:
        """Whether a scrape from ``client_host`` with this ``Authorization`` header may read."""
        if self.token is None:
            return "allowed" if is_loopback(client_host) else "not_loopback"
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return "no_token"
        if not hmac.compare_digest(presented.strip().encode(), self.token.encode()):
            return "wrong_token"
        return "allowed"


_NOT_LOOPBACK = "metrics are served to loopback clients only (no metrics_token is configured)"
REFUSALS: Final[dict[Decision, tuple[int, str]]] = {
    "no_token": (401, "metrics need the metrics token: Authorization: Bearer <token>"),
    "wrong_token": (401, "the metrics token presented is not the one configured"),
    "not_loopback": (403, _NOT_LOOPBACK),
}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per scrape every few seconds is noise


class MetricsServer:
    """``registry`` in the Prometheus text format at ``http://host:port/metrics``, for
    ``access``, on a daemon thread. ``port`` 0 picks a free one (see :attr:`port`).

    Raises:
        ConfigurationError: the address cannot be bound.
    """

    def __init__(self, registry: CollectorRegistry, host: str, port: int,
                 access: MetricsAccess) -> None:
        exposition = make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != "/metrics":
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"not found: the metrics are at /metrics\n"]
            decision = access.decide(environ.get("REMOTE_ADDR"), environ.get("HTTP_AUTHORIZATION"))
            if decision != "allowed":
                status, message = REFUSALS[decision]
                reason = "Unauthorized" if status == 401 else "Forbidden"
                start_response(f"{status} {reason}", [("Content-Type", "text/plain")])
                return [message.encode() + b"\n"]
            result: Iterable[bytes] = exposition(environ, start_response)
            return result

        try:
            self._server: WSGIServer = make_server(host, port, app, handler_class=_QuietHandler)
        except OSError as e:
            raise ConfigurationError(
                f"cannot serve metrics on {host}:{port}: {e.strerror or e}"
            ) from e
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="drivetrain-metrics", daemon=True)

    @property
    def port(self) -> int:
        """The port bound."""
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()
