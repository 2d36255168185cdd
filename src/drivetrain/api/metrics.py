"""``GET /metrics``: the API process's Prometheus metrics — its own HTTP traffic, and the
fleet's state read from the state database.

Who may scrape: :mod:`drivetrain.cloud.infra.metrics_access` (the metrics token, or loopback
clients only). What is exposed (docs/deploy.md lists every name):

- ``drivetrain_http_requests_total{method,route,status}`` and
  ``drivetrain_http_request_duration_seconds{method,route}``: per route *template*
  (``/v1/twins/{vin}``), never the raw path, so a caller cannot grow the series without
  bound; a path no route matches counts as ``route="unmatched"``;
- the fleet, from the database at scrape time (:class:`FleetCollector`): open dead letters by
  reason, the twins' desired items by status (convergence), open OTA rollouts' deliveries by
  state, ingest workers by state and the messages they hold, messages and samples ingested
  by outcome, and when ingestion last stored data. One aggregate query each, at most once per ``min_interval_s`` however many
  scrapers ask: the previous answer is served in between.

Every HTTP request also gets a server span when tracing is on (:mod:`drivetrain.core.tracing`),
continuing the caller's ``traceparent``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.metrics_access import REFUSALS, MetricsAccess
from drivetrain.core import tracing
from drivetrain.core.errors import AuthenticationError, DrivetrainError, PermissionDeniedError

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

UNMATCHED: Final = "unmatched"
#: Request duration buckets, seconds.
DURATION_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: OTA rollouts are the commands domain's continuous jobs of this origin (cloud.ota.flows).
OTA_ORIGIN: Final = "ota"


class ApiMetrics:
    """The metrics of one app, in a registry of its own (several apps in one process, as in
    the tests, never share series)."""

    def __init__(self, database: Database, access: MetricsAccess,
                 min_interval_s: float = 10.0) -> None:
        self.registry = CollectorRegistry()
        self.access = access
        self.requests = Counter(
            "drivetrain_http_requests", "HTTP requests answered, by route template and status.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.duration = Histogram(
            "drivetrain_http_request_duration_seconds",
            "Time to answer an HTTP request (to the end of the response body).",
            ["method", "route"], buckets=DURATION_BUCKETS_S, registry=self.registry,
        )
        self.fleet = FleetCollector(database, min_interval_s)
        self.registry.register(self.fleet)
        ProcessCollector(registry=self.registry)  # process_* : memory, CPU, open files

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)


class FleetCollector(Collector):
    """The fleet's state from the state database, cached for ``min_interval_s``."""

    def __init__(self, database: Database, min_interval_s: float = 10.0) -> None:
        self.database = database
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._at = float("-inf")

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._at >= self.min_interval_s:
                self._cached = self._read()
                self._at = time.monotonic()
            yield from self._cached

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily(
            "drivetrain_fleet_metrics_up",
            "1 when the fleet metrics below could be read from the state database, else 0.",
        )
        try:
            metrics = self._query()
        except DrivetrainError as e:  # the database is down: say so, serve the rest
            log.warning("fleet metrics unavailable: %s", e)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *metrics]

    def _query(self) -> list[Metric]:
        from drivetrain.cloud.commands import DELIVERY_STATES, open_job_progress
        from drivetrain.cloud.ingest import (
            last_accepted_at,
            list_ingest_workers,
            open_dead_letter_counts,
            outcome_totals,
        )
        from drivetrain.cloud.twins import desired_status_counts

        now = datetime.now(UTC)
        with self.database.session() as session:
            dead = open_dead_letter_counts(session)
            desired = desired_status_counts(session, now)
            rollouts = open_job_progress(session, origin=OTA_ORIGIN)
            workers = list_ingest_workers(session, now=now)
            last = last_accepted_at(session)
            outcomes = outcome_totals(session)

        dead_letters = GaugeMetricFamily(
            "drivetrain_dead_letters_open",
            "Dead letters not yet replayed, by reason.", labels=["reason"])
        for reason, count in sorted(dead.items()):
            dead_letters.add_metric([reason], count)

        convergence = GaugeMetricFamily(
            "drivetrain_twin_desired_items",
            "Desired-state items of the twins by status: pending deltas are the fleet's "
            "distance from convergence.", labels=["tenant", "status"])
        for (tenant, status), count in sorted(desired.items()):
            convergence.add_metric([tenant, status], count)

        ota = GaugeMetricFamily(
            "drivetrain_ota_rollout_deliveries",
            "Update notices of each open OTA rollout by delivery state.",
            labels=["tenant", "rollout", "state"])
        for rollout in rollouts:
            counts = rollout.counts.to_dict()
            for state in DELIVERY_STATES:
                ota.add_metric([rollout.tenant, rollout.name, state], counts.get(state, 0))

        members = GaugeMetricFamily(
            "drivetrain_ingest_workers",
            "Ingest workers of the shared subscription by state (from their heartbeats).",
            labels=["state"])
        by_state: dict[str, int] = {}
        for worker in workers:
            by_state[worker.state] = by_state.get(worker.state, 0) + 1
        for member_state, count in sorted(by_state.items()):
            members.add_metric([member_state], count)
        held = GaugeMetricFamily(
            "drivetrain_ingest_workers_pending_messages",
            "Messages received and not yet acknowledged, summed over the workers' last "
            "heartbeats.",
            value=sum(w.pending for w in workers))

        ingested_messages = CounterMetricFamily(
            "drivetrain_ingested_messages",
            "Messages of every vehicle by outcome (accepted, duplicate, a refusal reason), "
            "from the ingest counters of all workers.", labels=["outcome"])
        ingested_samples = CounterMetricFamily(
            "drivetrain_ingested_samples",
            "Samples (signal values) of every vehicle by outcome, from the ingest counters of "
            "all workers.", labels=["outcome"])
        for outcome, (messages, samples) in sorted(outcomes.items()):
            ingested_messages.add_metric([outcome], messages)
            ingested_samples.add_metric([outcome], samples)

        staleness = GaugeMetricFamily(
            "drivetrain_ingest_last_accepted_timestamp_seconds",
            "When ingestion last stored data of any vehicle, Unix seconds (0: never); "
            "alert on time() minus this.",
            value=last.timestamp() if last is not None else 0.0)
        return [dead_letters, convergence, ota, members, held, ingested_messages,
                ingested_samples, staleness]


class ObservedRequests:
    """ASGI middleware: counts and times every HTTP request by route template, and wraps it
    in a server span (continuing an incoming ``traceparent``)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET"))
        status = 500
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        headers = {k.decode("latin-1"): v.decode("latin-1")
                   for k, v in scope.get("headers") or [] if k == b"traceparent"}
        with tracing.continued(headers), tracing.span(
            f"{method} request", {"http.request.method": method}, kind="server"
        ) as span:
            try:
                await self.app(scope, receive, observed_send)
            finally:
                route = _route_of(scope)
                elapsed = time.perf_counter() - started
                self.metrics.requests.labels(method, route, str(status)).inc()
                self.metrics.duration.labels(method, route).observe(elapsed)
                if span is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)


def _route_of(scope: Scope) -> str:
    """The template of the route that answered (``/v1/twins/{vin}``), or ``unmatched``.

    FastAPI releases that include routers lazily keep the inner route (``/{vin}``) in
    ``scope["route"]`` and the full template in their effective route context; earlier ones
    put the prefixed route there. Never the raw path: that would be a series per VIN.
    """
    effective = (scope.get("fastapi") or {}).get("effective_route_context")
    template = getattr(effective, "path_format", None)
    if isinstance(template, str):
        return template
    template = getattr(scope.get("route"), "path_format", None)
    return template if isinstance(template, str) else UNMATCHED


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics (the metrics token, or loopback clients only)",
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {
        "schema": {"type": "string", "contentMediaType": "text/plain"}}}}},
)
def metrics(request: Request) -> PlainTextResponse:
    """The Prometheus text exposition. With ``metrics_token`` set, present it as
    ``Authorization: Bearer <token>`` (401 otherwise); without it, only loopback clients are
    answered (403 otherwise)."""
    observed = request.app.state.metrics
    assert isinstance(observed, ApiMetrics)
    client = request.client.host if request.client is not None else None
    decision = observed.access.decide(client, request.headers.get("authorization"))
    if decision != "allowed":
        status, message = REFUSALS[decision]
        raise (AuthenticationError if status == 401 else PermissionDeniedError)(message)
    return PlainTextResponse(observed.exposition(), media_type=CONTENT_TYPE_LATEST)
