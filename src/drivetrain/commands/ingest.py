"""`drivetrain ingest`: inspect and replay dead letters, show ingestion counters.

These commands act with the operator's authority over the configured state database (every
tenant, plus senders the registry does not know); ``--tenant`` narrows the view.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from drivetrain.commands.output import (
    Column,
    JsonOption,
    build_table,
    cell,
    emit_json,
    print_renderable,
    print_table,
    safe,
)

if TYPE_CHECKING:
    from drivetrain.cloud.ingest import DeadLetter, IngestWorkerStatus

app = typer.Typer(
    help="Telemetry ingestion: dead letters (list, show, replay) and per-vehicle counters.",
    no_args_is_help=True,
)
dead_letters_app = typer.Typer(
    help="Refused data kept with its exact reason: list, show, replay.", no_args_is_help=True
)
app.add_typer(dead_letters_app, name="dead-letters")


def _console() -> Console:
    """Standard output, sized when the command runs (not at import)."""
    return Console(highlight=False)


def _time(text: str | None, option: str) -> datetime | None:
    """``--since``/``--until``: None when not given, else as ``drivetrain lake query`` reads it."""
    from drivetrain.commands.lake import parse_when

    return None if text is None else parse_when(text, option)


def _letters_table(letters: list[DeadLetter]) -> Table:
    columns = [Column("id", "number"), Column("received (UTC)", "time"), Column("vin", "id"),
               Column("tenant"), Column("kind"), Column("reason"), Column("items", "number"),
               Column("status"), Column("detail")]
    return build_table(f"{len(letters):,} dead letter(s)", columns, (
        (d.dead_letter_id, d.received_at.strftime("%Y-%m-%d %H:%M:%S"), d.vin or "?",
         d.tenant or "-", d.kind, d.reason, d.sample_count, d.status, d.detail[:160])
        for d in letters
    ))


@dead_letters_app.command("list")
def list_command(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's vehicles."),
    vin: str | None = typer.Option(None, "--vin", help="Only what this VIN sent (or claimed)."),
    reason: str | None = typer.Option(
        None, "--reason", help="Only this reason, e.g. out_of_range."
    ),
    status: str = typer.Option("open", "--status", help="open, replayed or all."),
    since: str | None = typer.Option(None, "--since", help="Received at or after (ISO 8601)."),
    until: str | None = typer.Option(None, "--until", help="Received before (ISO 8601)."),
    after_id: int = typer.Option(0, "--after-id", min=0, help="Page: ids after this one."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Most dead letters shown."),
    as_json: JsonOption = False,
) -> None:
    """List dead letters, oldest first, with their reason and detail."""
    from drivetrain.cloud.ingest import list_dead_letters
    from drivetrain.commands.db import fail, load_settings_or_exit, open_migrated_database
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            letters = list_dead_letters(
                session,
                tenant=tenant,
                vin=vin,
                reason=reason,
                status=None if status == "all" else status,
                since=_time(since, "--since"),
                until=_time(until, "--until"),
                after_id=after_id,
                limit=limit,
            )
    except DrivetrainError as e:
        fail(e, code=2)
    finally:
        database.dispose()
    if as_json:
        emit_json([letter.to_dict() for letter in letters])
        return
    print_renderable(_letters_table(letters), _console())
    if len(letters) == limit:
        _console().print(f"more: --after-id {letters[-1].dead_letter_id}")


@dead_letters_app.command("show")
def show_command(
    dead_letter_id: int = typer.Argument(..., help="The dead letter's id."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="Most refused items shown."),
    as_json: JsonOption = False,
) -> None:
    """Show one dead letter and the samples or events it holds."""
    from drivetrain.cloud.ingest import get_dead_letter, refused_items
    from drivetrain.commands.db import fail, load_settings_or_exit, open_migrated_database
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            letter = get_dead_letter(session, dead_letter_id, tenant=None)
            items = refused_items(session, dead_letter_id, tenant=None, limit=limit)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json({"dead_letter": letter.to_dict(), "refused_items": items})
        return
    print_table(None, [Column("field"), Column("value")], letter.to_dict().items())
    if items:
        columns = [Column(name, "id" if name in ("path", "vin") else "text") for name in items[0]]
        print_table(f"refused items (first {len(items):,})", columns,
                    (list(item.values()) for item in items))


@dead_letters_app.command("replay")
def replay_command(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Dead letter ids; none: select by the filters.")
    ] = None,
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's vehicles."),
    vin: str | None = typer.Option(None, "--vin", help="Only this VIN's dead letters."),
    reason: str | None = typer.Option(None, "--reason", help="Only this reason."),
    since: str | None = typer.Option(None, "--since", help="Received at or after (ISO 8601)."),
    until: str | None = typer.Option(None, "--until", help="Received before (ISO 8601)."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="Most replayed at once."),
) -> None:
    """Run the pipeline again over open dead letters (after a late registration, a catalog
    update, a consent change); print what became of each."""
    from drivetrain.cloud.ingest import (
        IngestPipeline,
        TwinsReportedState,
        replay_dead_letters,
        select_for_replay,
    )
    from drivetrain.cloud.lake import Lake
    from drivetrain.commands.db import fail, load_settings_or_exit, open_migrated_database
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    database = open_migrated_database(settings)
    results = []
    try:
        with database.session() as session:
            chosen = select_for_replay(
                session,
                tenant=tenant,
                ids=ids or None,
                vin=vin,
                reason=reason,
                since=_time(since, "--since"),
                until=_time(until, "--until"),
                limit=limit,
            )
        with Lake.open(settings) as lake:
            pipeline = IngestPipeline.from_settings(settings, database, lake, TwinsReportedState())
            with Progress(
                TextColumn("replaying"),
                BarColumn(),
                MofNCompleteColumn(),
                console=Console(stderr=True),
            ) as progress:
                task = progress.add_task("replay", total=len(chosen))
                for dead_letter_id in chosen:
                    results.extend(replay_dead_letters(pipeline, [dead_letter_id]))
                    progress.advance(task)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    columns = [Column("id", "number"), Column("outcome"), Column("accepted", "number"),
               Column("refused", "number"), Column("not consented", "number"),
               Column("new dead letters", "number"), Column("detail")]
    print_table(f"replayed {len(results):,} dead letter(s)", columns, (
        (r.dead_letter_id, r.outcome, r.accepted, r.refused, r.not_consented,
         r.new_dead_letters, r.detail[:160]) for r in results
    ))


@app.command("stats")
def stats_command(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's vehicles."),
    vin: str | None = typer.Option(None, "--vin", help="Only this VIN."),
    vehicles: int = typer.Option(
        20, "--vehicles", min=1, max=1000, help="Busiest vehicles listed."
    ),
    as_json: JsonOption = False,
) -> None:
    """What ingestion did with each vehicle's data: messages and samples per outcome."""
    from datetime import UTC, datetime

    from drivetrain.cloud.ingest import ingest_stats, list_ingest_workers
    from drivetrain.commands.db import fail, load_settings_or_exit, open_migrated_database
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            stats = ingest_stats(session, tenant=tenant, vin=vin, vehicles_limit=vehicles)
            members = list_ingest_workers(session, now=datetime.now(UTC))
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json({"totals": stats.totals, "vehicles": stats.vehicles, "workers": members})
        return
    print_table("totals", [Column("outcome"), Column("messages", "number"),
                           Column("samples", "number")],
                ((c.outcome, c.messages, c.samples) for c in stats.totals))
    columns = [Column("vin", "id"), Column("tenant"), Column("outcomes (messages/samples)"),
               Column("last (UTC)", "time")]
    print_table(f"busiest {len(stats.vehicles):,} vehicle(s)", columns, (
        (v.vin, v.tenant or "-",
         ", ".join(f"{o.outcome} {o.messages:,}/{o.samples:,}" for o in v.outcomes),
         v.last_at.strftime("%Y-%m-%d %H:%M:%S")) for v in stats.vehicles
    ))
    _print_members(members)


def _print_members(members: list[IngestWorkerStatus]) -> None:
    """The shared subscription's members, and a warning for each away member whose broker
    session may be holding its share of the messages."""
    if not members:
        return
    table = Table(title="ingest workers (shared subscription members)")
    for column in ("client id", "group", "host", "state", "last seen (UTC)", "session until"):
        table.add_column(column, overflow="fold")
    for m in members:
        table.add_row(
            cell(m.client_id), cell(m.group), cell(m.host), cell(m.state),
            m.last_seen_at.strftime("%Y-%m-%d %H:%M:%S"),
            m.session_expires_at.strftime("%Y-%m-%d %H:%M:%S") if m.holds_messages else "-",
        )  # fmt: skip
    _console().print(table)
    for m in members:
        if m.holds_messages:
            _console().print(
                f"[yellow]warning:[/] {safe(m.client_id)} is {safe(m.state)}: the broker may be "
                f"routing its share of group {safe(repr(m.group))} into its session, where "
                f"messages wait until it reconnects or are lost when the session expires at "
                f"{m.session_expires_at:%Y-%m-%d %H:%M:%S} UTC; restart it with the same "
                "--client-id"
            )
