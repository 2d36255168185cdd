"""`drivetrain worker`: the long-running workers of the fleet-scale deployment."""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from collections.abc import Callable

    from drivetrain.cloud.commands import DispatcherStats
    from drivetrain.cloud.infra.metrics_access import MetricsServer
    from drivetrain.cloud.ingest import IngestWorker, WorkerStats
    from drivetrain.cloud.ingest.metrics import IngestMetrics
    from drivetrain.core.settings import Settings

app = typer.Typer(
    help="Long-running workers of the fleet-scale deployment (run N of each behind a broker).",
    no_args_is_help=True,
)

_err = Console(stderr=True, highlight=False, soft_wrap=True)
#: Most messages a micro-batch may hold (``--max-batch-messages``).
MAX_BATCH_MESSAGES = 10_000
#: The default: a worker with a backlog takes micro-batches this full. What a micro-batch
#: costs beyond its messages (a Parquet file with fsync per region and tenant, the index
#: and database commits) is shared by all of them; at 500 it was a quarter of a small
#: message's cost.
DEFAULT_BATCH_MESSAGES = 2000


def receive_window(max_batch_messages: int) -> int:
    """The broker's receive window the worker's MQTT client asks for: two micro-batches (the
    next one arrives while one is processed; a window below one micro-batch could never
    fill it), at least 1,000, at most MQTT's 65,535."""
    return min(65_535, max(1000, 2 * max_batch_messages))


def _default_client_id() -> str:
    return f"ingest-{socket.gethostname()}".lower()[:64]


@app.command("ingest")
def ingest(
    broker: str | None = typer.Option(
        None,
        "--broker",
        help="MQTT 5 broker URL, e.g. mqtt://127.0.0.1:1883 (default: settings.broker_url).",
    ),
    group: str = typer.Option(
        "ingest",
        "--workers-group",
        "--group",
        help="Shared-subscription group: the workers of one deployment share the stream.",
    ),
    client_id: str | None = typer.Option(
        None,
        "--client-id",
        help="MQTT client id; stable across restarts and unique per worker (the broker keeps "
        "this worker's unacknowledged messages for it). Default: ingest-<hostname>.",
    ),
    max_batch_messages: int = typer.Option(
        DEFAULT_BATCH_MESSAGES,
        "--max-batch-messages",
        min=1,
        max=MAX_BATCH_MESSAGES,
        help="Most messages per micro-batch.",
    ),
    max_delay_ms: float = typer.Option(
        200.0,
        "--max-delay-ms",
        min=0,
        help="Longest a message waits for its micro-batch, ms.",
    ),
    session_expiry_s: int = typer.Option(
        600,
        "--session-expiry-s",
        min=1,
        help="How long the broker keeps this worker's session (and its unacknowledged "
        "messages) while it is away, seconds. Messages the broker routes to an away member "
        "of the shared group wait there until it returns, and are lost when the session "
        "expires (docs/ingest.md, shared subscriptions).",
    ),
    username: str | None = typer.Option(None, "--username", help="Broker user name."),
    ca_file: str | None = typer.Option(None, "--ca-file", help="CA bundle for mqtts://."),
    cert_file: str | None = typer.Option(None, "--cert-file", help="Client certificate (mTLS)."),
    key_file: str | None = typer.Option(None, "--key-file", help="Client key (mTLS)."),
    ledger_retention_h: float = typer.Option(
        48.0,
        "--ledger-retention-h",
        min=0.01,
        help="How long ingested batch ids are remembered to skip re-deliveries, hours "
        "(keep it above --session-expiry-s).",
    ),
    twin_flush_s: float = typer.Option(
        2.0,
        "--twin-flush-s",
        min=0,
        help="How often the latest values are written to the twins under load, seconds "
        "(also whenever the worker is idle); 0 writes every micro-batch's.",
    ),
    status_interval_s: float = typer.Option(
        5.0,
        "--status-interval-s",
        min=0.1,
        help="How often a status line is logged when stderr is not a terminal, seconds.",
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus metrics at http://<metrics-host>:<port>/metrics (0: a free "
        "port, printed). Scrapes need the metrics_token setting, or come from loopback.",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1",
        "--metrics-host",
        help="Address the metrics port binds (0.0.0.0 in a container; set metrics_token).",
    ),
) -> None:
    """Consume vehicle telemetry, events and acks from an MQTT 5 broker.

    Joins $share/<group>/dt/v1/+/telemetry (and events, ack), validates and routes each
    micro-batch to the lake, the twins and the dead-letter store, and acknowledges messages
    only once that is committed. SIGTERM or Ctrl-C: finish the micro-batch, acknowledge,
    disconnect. The broker password is the broker_password setting
    ($DRIVETRAIN_BROKER_PASSWORD).
    """
    from drivetrain.cloud.ingest import (
        IngestPipeline,
        IngestWorker,
        TwinsReportedState,
        WorkerIdentity,
    )
    from drivetrain.cloud.ingest.webhooks import WebhookSender
    from drivetrain.cloud.lake import Lake
    from drivetrain.commands.data_dir import data_dir_line
    from drivetrain.commands.db import fail, load_settings_or_exit, open_migrated_database
    from drivetrain.core import tracing
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.core.transport.factory import open_transport

    settings = load_settings_or_exit()
    _err.print(data_dir_line(settings))
    url = broker or settings.broker_url
    if not url:
        fail("no broker: pass --broker mqtt://host:port or set DRIVETRAIN_BROKER_URL", code=2)
    name = client_id or _default_client_id()
    database = open_migrated_database(settings)
    try:
        lake = Lake.open(settings)
    except DrivetrainError as e:
        database.dispose()
        fail(e)
    try:
        transport = open_transport(
            url,
            client_id=name,
            username=username,
            password=settings.broker_password,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            session_expiry_s=session_expiry_s,
            receive_maximum=receive_window(max_batch_messages),
        )
    except DrivetrainError as e:
        lake.close()
        database.dispose()
        fail(e)
    pipeline = IngestPipeline.from_settings(
        settings, database, lake, TwinsReportedState(), twin_flush_s=twin_flush_s
    )
    try:
        sender = WebhookSender.from_settings(settings)
    except DrivetrainError as e:
        transport.close()
        lake.close()
        database.dispose()
        fail(e)
    pipeline.webhooks = sender
    tracing.configure_tracing("drivetrain-ingest")
    metrics, server = None, None
    backbone = bridge = None
    try:
        if metrics_port is not None:
            metrics, server = _metrics_server(settings, metrics_host, metrics_port)
        if settings.profile == "fleet":  # announce committed batches on the JetStream backbone
            from drivetrain.cloud.infra.backbone import open_backbone_bridge
            from drivetrain.cloud.twins import hub_for

            hub_for(database.engine)  # twin changes are queued for the bridge only with a hub
            backbone, bridge = open_backbone_bridge(settings, database, name)
    except DrivetrainError as e:
        if server is not None:
            server.close()
        sender.close()
        transport.close()
        lake.close()
        database.dispose()
        fail(e)
    if server is not None:
        _err.print(f"metrics on http://{metrics_host}:{server.port}/metrics")
    if backbone is not None:
        from drivetrain.cloud.ingest.announce import Announcer
        pipeline.announcer = Announcer(backbone, origin=name)
    identity = WorkerIdentity(
        client_id=name,
        group=group,
        broker=url,
        session_expiry_s=session_expiry_s,
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    worker = IngestWorker(
        transport,
        pipeline,
        max_batch_messages,
        max_delay_ms,
        group=group,
        ledger_retention_s=ledger_retention_h * 3600,
        identity=identity,
        metrics=metrics,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        quiet_long_lived_objects()
        worker.start()
        _err.print(
            f"ingest worker {name!r} consuming $share/{group}/dt/v1/+/{{telemetry,events,ack}} "
            f"from {url} (state: {database.display_url})"
        )
        _report_until(stop, worker, status_interval_s)
    except DrivetrainError as e:
        fail(e)
    finally:
        worker.stop()
        if server is not None:
            server.close()
        sender.close()
        transport.close()
        if bridge is not None and backbone is not None:
            bridge.stop()
            backbone.close()
        lake.close()
        database.dispose()
    final = worker.stats()
    _err.print(f"ingest worker {name!r} stopped: {_status(final)}")


@app.command("dispatch")
def dispatch(
    broker: Annotated[str | None, typer.Option(
        "--broker", help="MQTT 5 broker of the vehicle link (default: settings.broker_url).",
    )] = None,
    client_id: Annotated[str, typer.Option(
        "--client-id", help="MQTT client id (stable across restarts).")] = "dispatcher",
    status_interval_s: Annotated[float, typer.Option(
        "--status-interval-s", min=0.1, help="How often a status line is logged, seconds.",
    )] = 10.0,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", min=0, max=65535,
        help="Serve Prometheus metrics at http://<metrics-host>:<port>/metrics (0: a free "
        "port, printed). Scrapes need the metrics_token setting, or come from loopback.",
    )] = None,
    metrics_host: Annotated[str, typer.Option(
        "--metrics-host",
        help="Address the metrics port binds (0.0.0.0 in a container; set metrics_token).",
    )] = "127.0.0.1",
) -> None:
    """Deliver jobs and campaigns to the vehicles: the commands dispatcher and the campaign
    runner, signing with the cloud key, on an MQTT 5 broker.

    Acknowledgements come back through `drivetrain worker ingest`; status changes are bridged
    to the API processes through the broker. SIGTERM or Ctrl-C stops it after its round.
    """
    from drivetrain.api.background import ControlPlane
    from drivetrain.commands.db import fail, load_settings_or_exit, open_migrated_database
    from drivetrain.core import tracing
    from drivetrain.core.errors import DrivetrainError

    overrides: dict[str, object] = {"broker_url": broker} if broker else {}
    settings = load_settings_or_exit(**overrides)
    if not settings.broker_url:
        fail("no broker: pass --broker mqtt://host:port or set DRIVETRAIN_BROKER_URL", code=2)
    database = open_migrated_database(settings)
    tracing.configure_tracing("drivetrain-dispatch")
    plane = ControlPlane(settings, database, workers=False, client_id=client_id)
    server = None
    if metrics_port is not None:
        try:
            server = _dispatch_metrics(settings, metrics_host, metrics_port,
                                       lambda: plane.dispatcher.stats if plane.dispatcher else None)
        except DrivetrainError as e:
            database.dispose()
            fail(e)
        _err.print(f"metrics on http://{metrics_host}:{server.port}/metrics")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    started: list[Any] = []

    def line() -> str:
        stats = started[0].stats if started else None
        if stats is None:
            return "not dispatching"
        return (f"{stats.rounds:,} rounds, {stats.sent:,} messages sent, {stats.succeeded:,} "
                f"succeeded, {stats.failed:,} failed, {stats.refused_acks:,} acks refused, "
                f"{stats.errors} errors")

    try:
        plane.start()
        started.append(plane.dispatcher)
        _err.print(f"dispatcher {client_id!r} on {settings.broker_url} "
                   f"(state: {database.display_url})")
        while not stop.wait(status_interval_s):
            _err.print(line())
    except DrivetrainError as e:
        fail(e)
    finally:
        plane.stop()
        if server is not None:
            server.close()
        database.dispose()
    _err.print(f"dispatcher {client_id!r} stopped: {line()}")


def _metrics_server(
    settings: Settings, host: str, port: int
) -> tuple[IngestMetrics, MetricsServer]:
    """An ingest worker's instruments in a registry of their own, served on ``host:port``
    under the scrape rule of :mod:`drivetrain.cloud.infra.metrics_access`.

    Raises:
        ConfigurationError: a metrics_token too short, or an address that cannot be bound.
    """
    from prometheus_client import CollectorRegistry, ProcessCollector

    from drivetrain.cloud.infra.metrics_access import MetricsAccess, MetricsServer
    from drivetrain.cloud.ingest.metrics import IngestMetrics

    token = settings.metrics_token
    access = MetricsAccess(token.get_secret_value() if token is not None else None)
    metrics = IngestMetrics(CollectorRegistry())
    ProcessCollector(registry=metrics.registry)  # process_*: memory, CPU, open files
    return metrics, MetricsServer(metrics.registry, host, port, access).start()


def _dispatch_metrics(
    settings: Settings, host: str, port: int, stats: Callable[[], DispatcherStats | None]
) -> MetricsServer:
    """A dispatcher's counters and process metrics served on ``host:port`` (the rule of
    :mod:`drivetrain.cloud.infra.metrics_access`).

    Raises:
        ConfigurationError: a metrics_token too short, or an address that cannot be bound.
    """
    from prometheus_client import CollectorRegistry, ProcessCollector

    from drivetrain.cloud.commands.metrics import DispatcherCollector
    from drivetrain.cloud.infra.metrics_access import MetricsAccess, MetricsServer

    token = settings.metrics_token
    access = MetricsAccess(token.get_secret_value() if token is not None else None)
    registry = CollectorRegistry()
    registry.register(DispatcherCollector(stats))
    ProcessCollector(registry=registry)
    return MetricsServer(registry, host, port, access).start()


def _status(stats: WorkerStats, rate: float | None = None) -> str:
    text = (
        f"{stats.acknowledged:,} messages acked in {stats.micro_batches:,} micro-batches, "
        f"{stats.samples_accepted:,} samples stored, "
        f"{stats.samples_refused:,} samples and {stats.messages_refused:,} messages "
        f"dead-lettered, {stats.samples_not_consented:,} not consented{_by_category(stats)}, "
        f"{stats.duplicates:,} duplicates, {stats.pending:,} pending, "
        f"{stats.twin_values_pending:,} latest values waiting for the twins"
    )
    if rate is not None:
        text += f", {rate:,.0f} samples/s"
    if stats.failures:
        text += f", {stats.failures} failed attempts (last: {stats.last_error})"
    hooks = stats.webhooks
    if hooks is not None and (hooks.sent or hooks.failed or hooks.refused or hooks.dropped):
        text += (f", webhooks {hooks.sent:,} sent / {hooks.failed:,} failed / "
                 f"{hooks.refused:,} refused / {hooks.dropped:,} dropped")
    return text


def _by_category(stats: WorkerStats) -> str:
    if not stats.not_consented_by_category:
        return ""
    parts = sorted(stats.not_consented_by_category.items())
    return " (" + ", ".join(f"{category} {n:,}" for category, n in parts) + ")"


def _report_until(stop: threading.Event, worker: IngestWorker, interval_s: float) -> None:
    """Show a status line until ``stop``: a live Rich status on a terminal, else log lines."""
    last_samples, last_at = 0, time.monotonic()

    def line() -> str:
        nonlocal last_samples, last_at
        stats = worker.stats()
        now = time.monotonic()
        rate = (stats.samples_accepted - last_samples) / max(now - last_at, 1e-9)
        last_samples, last_at = stats.samples_accepted, now
        return _status(stats, rate)

    if _err.is_terminal:
        with _err.status(line()) as status:
            while not stop.wait(1.0):
                status.update(line())
        return
    while not stop.wait(interval_s):
        _err.print(line())
        sys.stderr.flush()


def _register_consume() -> None:
    from drivetrain.commands.worker_consume import consume

    app.command("consume")(consume)


_register_consume()


def quiet_long_lived_objects() -> None:
    """Take what start-up built (modules, the catalog, settings, caches: a few hundred thousand
    objects that live as long as the process) out of the cyclic garbage collector's passes.

    A full collection walks every tracked object, ~80 ms here, and the micro-batches'
    short-lived Arrow and row objects set one off every few seconds; frozen, the start-up
    objects are no longer walked (CPython's ``gc.freeze``, meant for exactly this).
    """
    gc.collect()
    gc.freeze()
