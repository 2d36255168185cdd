"""`drivetrain db` commands: migrate and inspect the state database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from drivetrain.cloud.infra import Database
    from drivetrain.cloud.infra.audit_checkpoints import AuditCheckpoint
    from drivetrain.core.settings import Settings

app = typer.Typer(
    help="State database: apply migrations, show the schema revision, verify the audit log.",
    no_args_is_help=True,
)

_err = Console(stderr=True, highlight=False)
T = TypeVar("T")


def fail(message: object, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    from drivetrain.commands.output import printable

    # the message quotes user input: printed as text, never read as markup, its terminal
    # control characters escaped
    _err.print(Text.assemble(("error:", "bold red"), f" {printable(str(message), keep_newlines=True)}"),
               soft_wrap=True)
    raise typer.Exit(code=code)


def cli_actor(prefix: str = "cli") -> str:
    """The audit actor for a command run by this OS user: ``{prefix}:{user}``, or ``prefix``
    when the user name cannot be found."""
    import getpass

    try:
        return f"{prefix}:{getpass.getuser()}"
    except (KeyError, OSError):
        return prefix


def load_settings_or_exit(**overrides: object) -> Settings:
    """The configured settings; exits with code 2 and the reason when they are invalid."""
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.core.settings import load_settings

    try:
        return load_settings(**overrides)
    except DrivetrainError as e:
        lines = str(e).splitlines()
        fail("invalid settings: " + (lines[0] if len(lines) == 1 else
                                      "".join(f"\n  {line}" for line in lines)), code=2)


def open_migrated_database(settings: Settings) -> Database:
    """The state database, refusing (exit 1) when its schema is behind the code, or when it
    is the default SQLite file and that does not exist (wrong folder, most likely)."""
    from drivetrain.cloud.infra import open_database
    from drivetrain.commands.data_dir import require_state_database
    from drivetrain.core.errors import DrivetrainError

    require_state_database(settings)
    try:
        database = open_database(settings)
    except DrivetrainError as e:
        fail(e)
    try:
        current, heads = database.current_revisions(), database.head_revisions()
    except DrivetrainError as e:
        database.dispose()
        fail(e)
    if set(current) != set(heads):
        database.dispose()
        fail(
            f"state database {database.display_url} is at revision(s) {list(current)}, the code "
            f"expects {list(heads)}: run `drivetrain db upgrade` first"
        )
    return database


def in_migrated_session(action: Callable[[Session], T], settings: Settings | None = None) -> T:
    """Run ``action`` in one transaction of the migrated state database (the settings of the
    environment unless given); a refusal exits 1 with ``error: …``."""
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(settings or load_settings_or_exit())
    try:
        with database.session() as session:
            return action(session)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()


@app.command("upgrade")
def upgrade(
    revision: str = typer.Option("heads", "--revision", help="Target revision (default: all heads)."),
) -> None:
    """Apply pending migrations of every domain to the configured state database."""
    from drivetrain.cloud.infra import open_database
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    try:
        database = open_database(settings)
    except DrivetrainError as e:
        fail(e)
    try:
        before = database.current_revisions()
        database.upgrade(revision)
        after = database.current_revisions()
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    state = "already up to date" if before == after else f"upgraded from {list(before) or 'empty'}"
    typer.echo(f"{database.display_url}: {state}; now at {list(after)}")
    for region, url in database.region_stores.describe() if database.region_stores else []:
        typer.echo(f"{region} personal state: {url}")


@app.command("current")
def current(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead."),
) -> None:
    """Show the applied revision(s) and whether migrations are pending."""
    from drivetrain.cloud.infra import open_database
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    try:
        database = open_database(settings)
    except DrivetrainError as e:
        fail(e)
    try:
        applied, heads = database.current_revisions(), database.head_revisions()
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        from drivetrain.commands.output import emit_json

        emit_json({"database": database.display_url, "applied": list(applied),
                   "heads": list(heads), "pending": set(applied) != set(heads)})
        return
    pending = "" if set(applied) == set(heads) else f" (pending: upgrade to {list(heads)})"
    typer.echo(f"{database.display_url}: {list(applied) or 'empty (no migrations applied)'}{pending}")


@app.command("partition-twins")
def partition_twins(
    batch_rows: int = typer.Option(
        5000, "--batch-rows", min=1, max=100_000,
        help="Rows copied per transaction (each batch holds its rows' locks that long).",
    ),
) -> None:
    """PostgreSQL: finish partitioning the twins by VIN hash after `drivetrain db upgrade` on
    a database that already held twins — copy the rows in short batches while the platform
    runs, then swap the tables in one brief lock (see docs/scale.md)."""
    from drivetrain.cloud.twins import partitions
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    database = open_migrated_database(settings)
    try:
        report = partitions.copy_online(database, batch_rows=batch_rows)
        with database.engine.connect() as connection:
            count = partitions.partition_count(connection)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if not report.copied:
        typer.echo(f"{database.display_url}: the twins are already partitioned ({count} partitions)")
        return
    copied = ", ".join(f"{table} {rows:,}" for table, rows in report.copied.items())
    typer.echo(f"{database.display_url}: copied {copied} rows; swapped in after "
               f"{report.swap_attempts} attempt(s); twins now in {count} hash partitions")


@app.command("verify-audit")
def verify_audit(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's chain."),
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="Also check the chains against this signed checkpoint "
        "(from `drivetrain db audit-checkpoint`): every entry it names must be in place.",
    )] = None,
) -> None:
    """Recompute the audit log's keyed hash chains; exit 1 naming the first broken entry."""
    from drivetrain.cloud.infra import verify_chain
    from drivetrain.cloud.infra.audit_checkpoints import check_checkpoint
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    anchor = _read_checkpoint(settings, checkpoint) if checkpoint is not None else None
    database = open_migrated_database(settings)
    try:
        with database.session() as session:
            result = verify_chain(session, tenant)
            problems = check_checkpoint(session, anchor) if anchor is not None else []
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if result.first_broken is not None:
        broken = result.first_broken
        fail(f"audit chain of tenant {broken.tenant!r} broken at entry {broken.seq}: {broken.reason}")
    if problems:
        fail("audit log does not match the checkpoint:" + "".join(f"\n  {p}" for p in problems))
    typer.echo(f"audit log intact: {result.entries_checked} entries verified"
               + (f", {len(anchor.heads)} checkpointed chain heads in place" if anchor else ""))
    if result.unkeyed_entries:
        typer.echo(f"note: {result.unkeyed_entries} entries are unkeyed (plain SHA-256, written "
                   "before the audit key or by a database opened without it); anyone who can "
                   "write the database could have recomputed them — a checkpoint covers them")


@app.command("audit-checkpoint")
def audit_checkpoint(
    out_dir: Annotated[Path, typer.Option(
        "--out-dir", help="Write the signed checkpoint into this folder "
        "(audit-checkpoint-<UTC time>.json). Keep it where the database's writers cannot "
        "change it.",
    )],
) -> None:
    """Sign every audit chain's head with the cloud key and write it out; run it on a
    schedule (cron, a systemd timer), or set audit_checkpoint_dir for `drivetrain serve`."""
    from drivetrain.cloud.fleet import cloud_signing_key
    from drivetrain.cloud.infra.audit_checkpoints import write_checkpoint
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    database = open_migrated_database(settings)
    try:
        key = cloud_signing_key(settings)
        path = write_checkpoint(database, key, out_dir)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    typer.echo(f"audit checkpoint signed by key {key.key_id}: {path}")


def _read_checkpoint(settings: Settings, path: Path) -> AuditCheckpoint:
    import json

    from drivetrain.cloud.fleet import cloud_signing_key
    from drivetrain.cloud.infra.audit_checkpoints import open_signed_checkpoint
    from drivetrain.core.errors import DrivetrainError

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return open_signed_checkpoint(document, cloud_signing_key(settings).verify_key)
    except OSError as e:
        fail(f"cannot read checkpoint {path}: {e.strerror}")
    except ValueError as e:
        fail(f"checkpoint {path} is not JSON: {e}")
    except DrivetrainError as e:
        fail(f"checkpoint {path} refused: {e}")
