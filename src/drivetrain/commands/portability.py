"""`drivetrain export` and `drivetrain import`: a tenant's data out as open files, and back in.

Both work on the configured state database and lake directly (an operator's tools, like
`drivetrain fleet list`). `export` writes a bundle of a whole tenant, or — with `--vin` or
`--owner` — a data subject's access archive; `import` loads a whole-tenant bundle into this
installation, idempotently. Both are audited (`portability.export`, `portability.import`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from drivetrain.commands.db import cli_actor, fail, load_settings_or_exit, open_migrated_database
from drivetrain.commands.output import Column, emit_json, print_table

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def export(
    out_dir: Annotated[Path, typer.Argument(help="New or empty directory for the bundle.",
                                            show_default=False)],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant to export.")] = "default",
    vin: Annotated[list[str] | None, typer.Option(
        "--vin", help="Only this vehicle's data (repeat): an access archive.")] = None,
    owner: Annotated[str | None, typer.Option(
        "--owner", help="Only the data of this owner's vehicles: an access archive.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Export a tenant's data (or one data subject's) as JSON + JSON Schemas + Parquet, with
    a manifest holding the SHA-256 of every file. Read it with DuckDB, pandas or Spark."""
    from drivetrain.cloud.lake import Lake
    from drivetrain.cloud.portability import Subject, export_data
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    database = open_migrated_database(settings)
    console = Console(highlight=False, soft_wrap=True, stderr=as_json)
    try:
        vins: set[str] | None = None
        if vin or owner:
            vins = set(vin or ())
            if owner:
                with database.session() as session:
                    owned = _owned_by(session, tenant, owner)
                if not owned:
                    fail(f"owner {owner!r} has no vehicle in tenant {tenant!r}")
                vins |= owned
        with Lake.open(settings) as lake:
            manifest = export_data(
                database, lake, Subject(tenant, None if vins is None else frozenset(vins)),
                out_dir, actor=cli_actor(),
                progress=None if as_json else lambda line: console.print(line, markup=False))
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json(manifest.to_dict())
        return
    print_table(
        f"exported {'tenant ' + tenant if manifest.subject == 'tenant' else 'access archive'}"
        f" to {out_dir}",
        [Column("part", "id"), Column("rows", "number")],
        [*((f"data/{s.table}.json", s.rows) for s in manifest.sections),
         *((t.path, t.rows) for t in manifest.telemetry)],
        console,
    )


def _owned_by(session: Session, tenant: str, owner: str) -> set[str]:
    """VINs of ``tenant``'s vehicles registered to ``owner`` (all pages of the registry)."""
    from drivetrain.cloud.fleet import list_vehicles

    found: set[str] = set()
    after = None
    while True:
        page = list_vehicles(session, tenant=tenant, after_vin=after, limit=1000)
        found |= {v.vin for v in page if v.owner == owner}
        if len(page) < 1000:
            return found
        after = page[-1].vin


def import_command(
    bundle: Annotated[Path, typer.Argument(help="The bundle directory (from drivetrain "
                                           "export).", show_default=False)],
    tenant: Annotated[str | None, typer.Option(
        "--tenant", help="Load into this tenant (default: the bundle's).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Import a whole-tenant bundle: checks every file's SHA-256 first; rows already there
    are kept, a row that collides (e.g. a VIN of another tenant) refuses the import."""
    from drivetrain.cloud.lake import Lake
    from drivetrain.cloud.portability import import_bundle
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    database = open_migrated_database(settings)
    console = Console(highlight=False, soft_wrap=True, stderr=as_json)
    try:
        with Lake.open(settings) as lake:
            report = import_bundle(
                database, lake, bundle, actor=cli_actor(), tenant=tenant,
                progress=None if as_json else lambda line: console.print(line, markup=False))
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json(report.to_dict())
        return
    print_table(
        f"imported into tenant {report.tenant!r}",
        [Column("table", "id"), Column("inserted", "number"), Column("already there", "number")],
        [*((t, n, report.unchanged.get(t, 0)) for t, n in report.inserted.items()),
         ("telemetry", report.telemetry_written, report.telemetry_skipped)],
        console,
    )
