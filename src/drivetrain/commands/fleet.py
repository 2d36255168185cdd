"""`drivetrain fleet` commands: provision vehicle identities and list the fleet registry."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from drivetrain.commands.db import (
    cli_actor,
    fail,
    load_settings_or_exit,
    open_migrated_database,
)
from drivetrain.commands.output import (
    Column,
    JsonOption,
    emit_json,
    print_table,
    stdout_console,
)

app = typer.Typer(
    help="Fleet registry: provision vehicle identities (VIN + key pair), list vehicles.",
    no_args_is_help=True,
)

#: Most vehicles one `provision` call creates.
MAX_COUNT = 100_000


@app.command("provision")
def provision(
    tenant: Annotated[
        str, typer.Option("--tenant", help="Tenant that owns the vehicles (must exist).")
    ],
    model: Annotated[str, typer.Option("--model", help="Model id, e.g. compact-bev.")],
    region: Annotated[
        str, typer.Option("--region", help="Data-residency region, e.g. EU, US, CN.")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="Directory for the credential files (VIN.json, mode 0600)."),
    ],
    count: Annotated[
        int,
        typer.Option("--count", "-n", min=1, max=MAX_COUNT, help="Vehicles to create."),
    ] = 1,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Owner recorded for every vehicle.")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Seed of the VIN generator (reproducible VINs; keys stay random)."
        ),
    ] = None,
) -> None:
    """Create vehicle identities: a VIN and an Ed25519 key pair each, registered in the state
    database; each vehicle's private key and the cloud's public key go to a credential file.

    In the embedded deployment the cloud signing key is created on first use.
    """
    from drivetrain.cloud.fleet import cloud_signing_key, provision_vehicle
    from drivetrain.core.errors import DrivetrainError, NotFoundError

    settings = load_settings_or_exit()
    console = Console(highlight=False, soft_wrap=True)
    try:
        cloud_key = cloud_signing_key(settings)
    except DrivetrainError as e:
        fail(e)
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        fail(f"cannot create the credentials directory {out}: {e.strerror or e}")
    database = open_migrated_database(settings)
    rng = random.Random(seed)
    written: list[Path] = []
    rows: list[tuple[str, str, str, str]] = []
    progress = Progress(
        TextColumn("provisioning"), BarColumn(), MofNCompleteColumn(),
        console=Console(stderr=True), transient=True, disable=count < 2,
    )  # fmt: skip
    try:
        with progress, database.session() as session:
            task = progress.add_task("vehicles", total=count)
            for _ in range(count):
                vehicle, credentials = provision_vehicle(
                    session, tenant=tenant, model=model, region=region,
                    cloud_key=cloud_key.verify_key, actor=cli_actor(), owner=owner, rng=rng,
                )  # fmt: skip
                path = out / f"{vehicle.vin}.json"
                if path.exists():
                    raise FileExistsError(f"credential file {path} exists; not overwriting it")
                credentials.write(path)
                written.append(path)
                rows.append((vehicle.vin, vehicle.region, vehicle.key_id, str(path)))
                progress.advance(task)
    except (DrivetrainError, OSError) as e:
        for path in written:  # the registrations were rolled back: their keys are useless
            path.unlink(missing_ok=True)
        if isinstance(e, NotFoundError) and "tenant" in str(e):
            fail(f"{e}; create it with `drivetrain auth create-tenant {tenant}`")
        fail(e)
    finally:
        database.dispose()
    shown: list[tuple[str, ...]] = list(rows) if len(rows) <= 50 else [
        *rows[:25], ("…", "", "", f"{len(rows) - 50:,} more"), *rows[-25:]]
    print_table(
        f"{count:,} vehicle(s) provisioned for tenant {tenant!r}, model {model!r}",
        [Column("VIN", "id"), Column("region"), Column("key id", "id"),
         Column("credentials (0600)", "id")],
        shown, console,
    )
    console.print(
        f"cloud signing key {cloud_key.key_id} ({settings.cloud_key_path}); "
        f"credentials in {out.resolve()}"
    )


@app.command("list")
def list_command(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant's vehicles.")
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Only vehicles of this region.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=100_000, help="Most vehicles shown.")
    ] = 100,
    as_json: JsonOption = False,
) -> None:
    """List registered vehicles (VIN order) with their region, key id and status."""
    from drivetrain.cloud.fleet import count_vehicles, list_vehicles
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            vehicles = list_vehicles(session, tenant=tenant, region=region, limit=limit)
            counts = count_vehicles(session, tenant=tenant)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    total = sum(counts.values()) if region is None else counts.get(region.upper(), 0)
    if as_json:
        emit_json({
            "total": total,
            "by_region": dict(sorted(counts.items())),
            "vehicles": [
                {"vin": v.vin, "tenant": v.tenant, "model": v.model, "region": v.region,
                 "owner": v.owner, "key_id": v.key_id, "status": v.status,
                 "registered_at": v.created_at}
                for v in vehicles
            ],
        })
        return
    columns = [Column("VIN", "id"), Column("tenant"), Column("model"), Column("region"),
               Column("key id", "id"), Column("status"), Column("registered (UTC)", "time")]
    print_table(f"{len(vehicles):,} of {total:,} vehicle(s)", columns, (
        (v.vin, v.tenant, v.model, v.region, v.key_id, v.status,
         v.created_at.strftime("%Y-%m-%d %H:%M")) for v in vehicles
    ))
    if counts:
        stdout_console().print(
            "by region: " + ", ".join(f"{r} {n:,}" for r, n in sorted(counts.items())),
            markup=False,
        )
