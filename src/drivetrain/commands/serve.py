"""`drivetrain serve`: run the HTTP API."""

from __future__ import annotations

import typer


def serve(
    host: str | None = typer.Option(None, "--host", help="Bind address (default: settings.api_host)."),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port (default: settings.api_port)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Run the HTTP API: migrate the state database, then serve with uvicorn.

    Embedded deployment: creates the bootstrap admin on first start and prints the path of
    its credentials file (never the secret).
    """
    import uvicorn

    from drivetrain.api import create_app
    from drivetrain.cloud.infra import open_database
    from drivetrain.commands.data_dir import data_dir_line
    from drivetrain.commands.db import fail, load_settings_or_exit
    from drivetrain.core.errors import DrivetrainError

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["api_host"] = host
    if port is not None:
        overrides["api_port"] = port
    settings = load_settings_or_exit(**overrides)
    try:
        database = open_database(settings)
        app = create_app(settings, database)
    except DrivetrainError as e:
        fail(e)
    base = f"http://{settings.api_host}:{settings.api_port}"
    typer.echo(f"Drivetrain API ({settings.deployment}) on {base}")
    typer.echo(f"  {data_dir_line(settings)}")
    typer.echo(f"  state database: {database.display_url}")
    bootstrap = app.state.drivetrain.bootstrap
    if bootstrap is not None:
        typer.echo(f"  bootstrap admin credentials: {bootstrap.path}")
    typer.echo(f"  OpenAPI: {base}/openapi.json   docs: {base}/docs")
    try:
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level=log_level)
    finally:
        database.dispose()
