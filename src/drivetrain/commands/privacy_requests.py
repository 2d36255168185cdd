"""`drivetrain privacy request ...`: data subject requests from the command line, and the
purpose-consent ledger of a vehicle.

Like the consent commands, these work on the configured state database and lake directly, as
an operator; every action is registered and audited with the actor ``cli:<user>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from drivetrain.commands.db import cli_actor, fail, load_settings_or_exit, open_migrated_database
from drivetrain.commands.output import Column, emit_json, print_table

if TYPE_CHECKING:
    from drivetrain.cloud.privacy.requests import DataRequest

request_app = typer.Typer(
    help="Data subject requests: access archives, erasure, the register with deadlines.",
    no_args_is_help=True,
)
grants_app = typer.Typer(help="The purpose-consent ledger of a vehicle.", no_args_is_help=True)

Tenant = Annotated[str, typer.Option("--tenant", help="The tenant the vehicles belong to.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Vins = Annotated[list[str], typer.Argument(help="The vehicles' VINs (1-100).",
                                           show_default=False)]


def _print_requests(requests: list[DataRequest], as_json: bool, title: str) -> None:
    now = datetime.now(UTC)
    if as_json:
        emit_json([r.to_dict(now) for r in requests])
        return
    if not requests:
        print("no data requests in this tenant yet (open one with `drivetrain privacy request "
              "access VIN` or `... erase VIN --yes`)")
        return
    print_table(title, [
        Column("request", "id"), Column("kind", "id"), Column("status", "id"),
        Column("received", "time"), Column("due", "time"), Column("overdue", "id"),
        Column("outcome"),
    ], ((r.request_id, r.kind, r.status, r.received_at.strftime("%Y-%m-%d %H:%M"),
         r.due_at.strftime("%Y-%m-%d"), "yes" if r.overdue(now) else "no",
         ", ".join(f"{k}={v}" for k, v in r.outcome.items() if not isinstance(v, (dict, list))))
        for r in requests))


def _serve(kind: str, vins: list[str], tenant: str, as_json: bool) -> None:
    from drivetrain.cloud.fleet import get_vehicle
    from drivetrain.cloud.lake import Lake
    from drivetrain.cloud.portability import serve_access, serve_erasure
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    database = open_migrated_database(settings)
    try:
        with database.session() as session:
            for vin in vins:
                get_vehicle(session, vin, tenant=tenant)
        with Lake.open(settings) as lake:
            if kind == "access":
                done = serve_access(database, lake, tenant=tenant, vins=vins,
                                    archive_root=settings.data_dir / "privacy-requests",
                                    actor=cli_actor())
            else:
                done = serve_erasure(database, lake, tenant=tenant, vins=vins, actor=cli_actor())
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    _print_requests([done], as_json, f"{kind} request {done.request_id}")


@request_app.command("access")
def access(vins: Vins, tenant: Tenant = "default", as_json: JsonOption = False) -> None:
    """Write the access archive of the vehicles (everything about them; see the request's
    outcome for where) and register the request."""
    _serve("access", vins, tenant, as_json)


@request_app.command("erase")
def erase(
    vins: Vins,
    tenant: Tenant = "default",
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Erase every trace of the vehicles: state rows and every lake file holding their
    samples. Cannot be undone; the register keeps only their pseudonyms."""
    if not yes and not typer.confirm(f"erase everything of {', '.join(vins)} in tenant "
                                     f"{tenant!r}? This cannot be undone"):
        fail("nothing erased", code=1)
    _serve("erasure", vins, tenant, as_json)


@request_app.command("list")
def list_command(tenant: Tenant = "default", as_json: JsonOption = False) -> None:
    """The tenant's data requests, newest first, with their deadlines."""
    from drivetrain.cloud.privacy.requests import list_requests
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            requests = list_requests(session, tenant, limit=1000)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    _print_requests(requests, as_json, f"data requests of tenant {tenant!r}")


@request_app.command("reapply")
def reapply(tenant: Tenant = "default", as_json: JsonOption = False) -> None:
    """Erase again what earlier erasure requests erased (run after restoring a backup)."""
    from drivetrain.cloud.lake import Lake
    from drivetrain.cloud.portability import reapply_erasures
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    database = open_migrated_database(settings)
    try:
        with Lake.open(settings) as lake:
            summary = reapply_erasures(database, lake, tenant=tenant, actor=cli_actor())
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json(summary)
        return
    print(f"erased again: {summary['vehicles']} vehicles found in the state database "
          f"({summary['state_rows']} rows), {summary['lake_rows']} lake rows")


@grants_app.command("list")
def grants_list(
    vin: Annotated[str, typer.Argument(help="The vehicle's VIN.", show_default=False)],
    tenant: Tenant = "default",
    as_json: JsonOption = False,
) -> None:
    """Every grant of the vehicle, oldest first, with its status now."""
    from drivetrain.cloud.fleet import get_vehicle
    from drivetrain.cloud.privacy import consent_history
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            get_vehicle(session, vin, tenant=tenant)
            grants = consent_history(session, tenant, vin)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    now = datetime.now(UTC)
    if as_json:
        emit_json([g.to_dict(now) for g in grants])
        return
    if not grants:
        print(f"{vin} has no purpose grant: it is read only for contract and legal purposes "
              "(maintenance, fleet_operations, security)")
        return
    print_table(f"purpose grants of {vin}", [
        Column("grant", "number"), Column("purpose", "id"), Column("categories"),
        Column("person", "id"), Column("recipient", "id"), Column("status", "id"),
        Column("expires", "time"),
    ], ((g.grant_id, g.purpose, ", ".join(sorted(g.categories)), g.person, g.recipient or "-",
         g.status(now), g.expires_at.strftime("%Y-%m-%d %H:%M") if g.expires_at else "never")
        for g in grants))
