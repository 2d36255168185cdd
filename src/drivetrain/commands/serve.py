"""`drivetrain serve`: run the HTTP API."""

from __future__ import annotations

import typer


def serve(
    host: str | None = typer.Option(None, "--host", help="Bind address (default: settings.api_host)."),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port (default: settings.api_port)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    profile: str | None = typer.Option(
        None, "--profile",
        help="Adapters: 'embedded' (in-process bus) or 'fleet' (JetStream backbone, "
        "PostgreSQL, MQTT link; needs backbone_url, database_url, broker_url). Default: "
        "settings.profile.",
    ),
) -> None:
    """Run the HTTP API and the operations console (at /): migrate the state database, then
    serve with uvicorn.

    Embedded deployment: creates the bootstrap admin on first start and prints the path of
    its credentials file (never the secret), and runs the loops that reach vehicles in this
    process — the commands dispatcher and campaign runner, and with a vehicle link
    (broker_url) the twins reconciler and an ingest worker. Without a link, jobs and campaigns
    say "not delivered: no vehicle link". Production deployment: the API only (run
    `drivetrain worker dispatch` and `drivetrain worker ingest` beside it); with broker_url
    its change streams also see the status changes of those workers.

    Fleet profile (--profile fleet): the same loops, with the status bus and ingest's
    announcements on the NATS JetStream backbone (docs/scale.md).
    """
    import uvicorn

    from drivetrain.api import create_app
    from drivetrain.api.background import ControlPlane
    from drivetrain.api.probes import link_check
    from drivetrain.cloud.infra import open_database
    from drivetrain.cloud.ingest.metrics import IngestMetrics
    from drivetrain.commands.data_dir import data_dir_line
    from drivetrain.commands.db import fail, load_settings_or_exit
    from drivetrain.core import tracing
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.core.transport import MqttTransport

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["api_host"] = host
    if port is not None:
        overrides["api_port"] = port
    if profile is not None:
        if profile not in ("embedded", "fleet"):
            raise typer.BadParameter(f"expected 'embedded' or 'fleet', got {profile!r}",
                                     param_hint="--profile")
        overrides["profile"] = profile
    settings = load_settings_or_exit(**overrides)
    tracing.configure_tracing("drivetrain-api")
    try:
        database = open_database(settings)
        app = create_app(settings, database)
        embedded = settings.deployment == "embedded"
        plane = ControlPlane(settings, database, workers=embedded, dispatching=embedded,
                             ingest_metrics=IngestMetrics(app.state.metrics.registry))
        plane.start()
    except DrivetrainError as e:
        fail(e)
    link = plane.link
    if isinstance(link, MqttTransport):  # readiness follows this process's own MQTT session
        app.state.readiness.add(link_check(lambda: link.connected))
    base = f"http://{settings.api_host}:{settings.api_port}"
    typer.echo(f"Drivetrain API ({settings.deployment}, profile {settings.profile}) on {base}")
    typer.echo(f"  {data_dir_line(settings)}")
    typer.echo(f"  state database: {database.display_url}")
    bootstrap = app.state.drivetrain.bootstrap
    if bootstrap is not None:
        typer.echo(f"  bootstrap admin credentials: {bootstrap.path}")
    typer.echo(f"  console: {base}/   OpenAPI: {base}/openapi.json   docs: {base}/docs")
    typer.echo(f"  vehicle link: {plane.link_description}")
    if not embedded:
        typer.echo("  dispatching: run `drivetrain worker dispatch` (and `worker ingest`)")
    try:
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level=log_level)
    finally:
        plane.stop()
        database.dispose()
