"""`drivetrain worker consume`: members of the platform's consumer groups of the backbone."""

from __future__ import annotations

import signal
import socket
import threading
from typing import Annotated

import typer
from rich.console import Console

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def consume(
    groups: Annotated[
        str,
        typer.Option(
            "--groups",
            help="Comma-separated consumer groups to join: lake-activity, "
            "twin-activity, security-ops (default: all).",
        ),
    ] = "lake-activity,twin-activity,security-ops",
    since: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="First replay each group's stream from this ISO 8601 time (UTC when "
            "no zone is given), applying only the messages the state lacks; then join the groups.",
        ),
    ] = None,
    group_prefix: Annotated[
        str,
        typer.Option(
            "--group-prefix",
            help="Put before each group's name (deployments sharing one "
            "JetStream keep their groups apart).",
        ),
    ] = "",
    client_id: Annotated[
        str | None,
        typer.Option(
            "--client-id",
            help="This process's name on the backbone (default: consume-<host>).",
        ),
    ] = None,
    status_interval_s: Annotated[
        float,
        typer.Option(
            "--status-interval-s",
            min=0.1,
            help="How often a status line is logged, seconds.",
        ),
    ] = 10.0,
) -> None:
    """Apply the backbone's streams to the platform state, as a member of each consumer group
    (fleet profile): run as many as the load needs; each message takes effect once.

    lake-activity reads telemetry-validated, twin-activity twin-reported (per-vehicle
    activity), security-ops security-events (incidents). SIGTERM or Ctrl-C stops it; what it
    had not acknowledged goes to the other members.
    """
    from drivetrain.cloud.streams import open_consumer_groups
    from drivetrain.commands.db import fail, load_settings_or_exit, open_migrated_database
    from drivetrain.commands.lake import parse_when
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    if settings.backbone_url is None:
        fail(
            "no backbone: set DRIVETRAIN_BACKBONE_URL (backbone_url must be nats://host:port)",
            code=2,
        )
    chosen = [g.strip() for g in groups.split(",") if g.strip()]
    moment = parse_when(since, "--from") if since is not None else None
    name = client_id or f"consume-{socket.gethostname()}".lower()[:64]
    database = open_migrated_database(settings)
    try:
        backbone, members = open_consumer_groups(
            settings, database, name, chosen, moment, group_prefix
        )
    except DrivetrainError as e:
        database.dispose()
        fail(e)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())

    def line() -> str:
        return "; ".join(
            f"{g}: {s.applied:,} applied, {s.duplicates:,} duplicates, "
            f"{s.dropped} dropped, {s.failed} failed"
            + (f", {s.replayed:,} replayed" if moment else "")
            for g, s in members.stats.items()
        )

    _err.print(
        f"consumer {name!r} consuming {', '.join(chosen)} from {settings.backbone_url} "
        + (f"namespace {settings.backbone_namespace!r} " if settings.backbone_namespace else "")
        + f"(state: {database.display_url})"
    )
    try:
        while not stop.wait(status_interval_s):
            _err.print(line())
    finally:
        members.stop()
        backbone.close()
        database.dispose()
    _err.print(f"consumer {name!r} stopped: {line()}")
