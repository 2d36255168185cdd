"""`drivetrain privacy` commands: show and set a vehicle's consent, list the privacy categories.

The consent commands work on the configured state database directly (like `drivetrain fleet
list`), as an operator with access to it: the vehicle must be in the fleet registry, and
``--tenant``, when given, must own it. Every change is audited as ``privacy.consent.set`` with
the actor ``cli:<user>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from drivetrain.commands.db import (
    cli_actor,
    fail,
    load_settings_or_exit,
    open_migrated_database,
)
from drivetrain.commands.output import Column, emit_json, print_table
from drivetrain.commands.privacy_aggregates import aggregate_command, budget_command
from drivetrain.commands.privacy_policy import policy_app
from drivetrain.commands.privacy_requests import grants_app, request_app

if TYPE_CHECKING:
    from drivetrain.cloud.privacy import Consent

app = typer.Typer(
    help="Privacy: per-vehicle consent (which data categories may be stored), the categories, "
    "purpose grants, data subject requests.",
    no_args_is_help=True,
)
consent_app = typer.Typer(
    help="A vehicle's consent: show it, or set the categories its data may be stored for.",
    no_args_is_help=True,
)
app.add_typer(consent_app, name="consent")
app.add_typer(request_app, name="request")
app.add_typer(grants_app, name="grants")
app.add_typer(policy_app, name="policy")
app.command("aggregate")(aggregate_command)
app.command("budget")(budget_command)

#: The ``--allow`` value that allows no category at all.
ALLOW_NONE = "none"

TenantOption = Annotated[
    str | None,
    typer.Option("--tenant", help="Tenant that must own the vehicle (default: its owner)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def parse_allow(text: str) -> list[str]:
    """``--allow``: comma-separated category names, or ``none`` for no category.

    Names are checked by the privacy service (an unknown one is refused there, by name).

    Raises:
        typer.BadParameter: an empty value or an empty name between commas.
    """
    if text.strip().lower() == ALLOW_NONE:
        return []
    names = [name.strip() for name in text.split(",")]
    if not text.strip() or any(not name for name in names):
        raise typer.BadParameter(
            f"{text!r} is not a list of categories; expected names separated by commas, e.g. "
            f"technical,location (or {ALLOW_NONE!r} for no category)",
            param_hint="--allow",
        )
    return names


def _print_consent(
    consent: Consent, pseudonym: str, as_json: bool, job_id: str | None = None
) -> None:
    from drivetrain.cloud.privacy import describe_categories
    from drivetrain.core.vss import builtin_catalog

    updated = consent.updated_at.isoformat() if consent.updated_at else None
    console = Console(highlight=False, soft_wrap=True)
    if as_json:
        emit_json({
            "vin": consent.vin, "tenant": consent.tenant, "categories": sorted(consent.categories),
            "source": consent.source, "updated_at": updated, "pseudonym": pseudonym,
            **({} if job_id is None else {"job_id": job_id}),
        })  # fmt: skip
        return
    when = consent.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC") if consent.updated_at else "never set"
    print_table(
        f"consent of {consent.vin} (tenant {consent.tenant!r}; source {consent.source}, {when})",
        [Column("category", "id"), Column("stored", "id"), Column("meaning")],
        ((info.name, "yes" if info.name in consent.categories else "no (dropped at ingestion)",
          info.meaning) for info in describe_categories(builtin_catalog(), examples=0)),
        console,
    )
    console.print(f"pseudonym in the lake: {pseudonym}", markup=False)
    if job_id is not None:
        console.print(f"sent to the vehicle as job {job_id} (it stops collecting what the "
                      "consent no longer covers when the job reaches it)", markup=False)


def _with_vehicle(
    vin: str, tenant: str | None, change: list[str] | None, source: str
) -> tuple[Consent, str, str | None]:
    """Show (``change`` None) or set the consent of ``vin`` in one transaction (a change is
    also sent to the vehicle: the job id is returned)."""
    from drivetrain.cloud.fleet import get_vehicle
    from drivetrain.cloud.privacy import get_consent, vehicle_pseudonym
    from drivetrain.cloud.privacy.flows import change_consent
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    job_id = None
    try:
        with database.session() as session:
            owner = get_vehicle(session, vin, tenant=tenant).tenant
            if change is None:
                consent = get_consent(session, vin, owner)
            else:
                changed = change_consent(
                    session, vin=vin, tenant=owner, categories=change, source=source,
                    actor=cli_actor(),
                )  # fmt: skip
                consent, job_id = changed.consent, changed.job_id
            pseudonym = vehicle_pseudonym(session, owner, vin)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    return consent, pseudonym, job_id


@consent_app.command("show")
def show(
    vin: Annotated[str, typer.Argument(help="The vehicle's VIN.", show_default=False)],
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show which privacy categories of the vehicle's data may be stored, and since when.

    A vehicle without a consent record has the default: technical and diagnostics.
    """
    consent, pseudonym, _ = _with_vehicle(vin, tenant, None, "")
    _print_consent(consent, pseudonym, as_json)


@consent_app.command("set")
def set_command(
    vin: Annotated[str, typer.Argument(help="The vehicle's VIN.", show_default=False)],
    allow: Annotated[
        str,
        typer.Option("--allow", help="Categories to allow, comma-separated (e.g. "
                     "technical,location), or 'none'. Replaces the current consent.",
                     show_default=False),
    ],
    source: Annotated[
        str, typer.Option("--source", help="Where the consent came from, e.g. operator, contract.")
    ] = "operator",
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace the vehicle's consent; ingestion applies it from its next micro-batch on, and
    the vehicle stops collecting what it no longer covers when the signed command reaches it.

    Data already stored is not touched. An unknown category is refused and nothing changes.
    """
    consent, pseudonym, job_id = _with_vehicle(vin, tenant, parse_allow(allow), source)
    _print_consent(consent, pseudonym, as_json, job_id)


@app.command("categories")
def categories(
    as_json: JsonOption = False,
    examples: Annotated[
        int, typer.Option("--examples", min=0, max=50, help="Example VSS paths per category.")
    ] = 3,
) -> None:
    """List the five privacy categories: meaning, default consent, signal count, examples."""
    from drivetrain.cloud.privacy import describe_categories
    from drivetrain.core.vss import builtin_catalog

    infos = describe_categories(builtin_catalog(), examples=examples)
    if as_json:
        emit_json([info.to_dict() for info in infos])
        return
    print_table(
        "privacy categories (a signal's category: `drivetrain vss show PATH`)",
        [Column("category", "id"), Column("default", "id"), Column("signals", "number"),
         Column("meaning"), Column("examples", "id")],
        ((info.name, "allowed" if info.default_consent else "needs consent",
          info.signal_count, info.meaning, "\n".join(info.examples)) for info in infos),
    )


@app.command("rotate-pseudonym-key")
def rotate_pseudonym_key_command(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant whose key to rotate.")] = (
        "default"
    ),
    as_json: JsonOption = False,
) -> None:
    """Make a new pseudonym key the tenant's current one; new lake data is pseudonymised
    under it from then on (a running ingest worker picks it up within seconds).

    Earlier keys are kept and the lake is not rewritten: a vehicle's older rows keep their
    older pseudonym, and access and erasure requests still find them. Audited as
    ``privacy.pseudonym_key.rotate``.
    """
    from drivetrain.cloud.privacy import pseudonym_keys, rotate_pseudonym_key
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            rotate_pseudonym_key(session, tenant, actor=cli_actor())
            keys = pseudonym_keys(session, tenant)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json({"tenant": tenant, "current": keys[0].version,
                   "keys": [k.to_dict() for k in keys]})
        return
    print_table(
        f"pseudonym keys of {tenant} (version {keys[0].version} is current; the earlier ones "
        "are kept so that older data is still found)",
        [Column("version", "number"), Column("created", "time"), Column("current", "id")],
        ((k.version, k.created_at.strftime("%Y-%m-%d %H:%M:%S"), "yes" if k.current else "no")
         for k in keys),
    )
