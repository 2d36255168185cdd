"""`drivetrain data-act` commands: the EU Data Act from the operator's side.

The containers (and trade secrets) in force; owner accounts bound to vehicles; a vehicle's
container grants and access log; business recipients' standing and the monthly metering. They
work on the configured state database directly, like `drivetrain privacy`; changes are audited
with the actor ``cli:<user>``. Owners and third parties use the API (``/v1/data-act``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from drivetrain.commands.db import cli_actor, fail, in_migrated_session, load_settings_or_exit
from drivetrain.commands.output import Column, emit_json, print_table

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from drivetrain.core.settings import Settings

app = typer.Typer(
    help="EU Data Act: containers of signals, owner accounts of vehicles, container grants "
    "to third parties, the access log, compensation metering.",
    no_args_is_help=True,
)
owner_app = typer.Typer(help="Owner accounts (clients of role owner) bound to vehicles.",
                        no_args_is_help=True)
recipient_app = typer.Typer(help="Business recipients' standing for compensation.",
                            no_args_is_help=True)
app.add_typer(owner_app, name="owner")
app.add_typer(recipient_app, name="recipient")

Tenant = Annotated[str, typer.Option("--tenant", help="The tenant acted for.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
VinArg = Annotated[str, typer.Argument(help="The vehicle's VIN.", show_default=False)]
ClientOption = Annotated[str, typer.Option("--client", help="The owner account's client id.",
                                           show_default=False)]
T = TypeVar("T")


def _on_database(action: Callable[[Session], T], settings: Settings | None = None) -> T:
    """Run ``action`` in one transaction of the migrated state database; a refusal exits 1
    with ``error: …``."""
    return in_migrated_session(action, settings)


@app.command("containers")
def containers_command(as_json: JsonOption = False) -> None:
    """The containers in force: their signals (built-in catalog) and trade secrets."""
    from drivetrain.cloud.privacy.containers import load_containers
    from drivetrain.cloud.privacy.data_act_reads import signal_metadata
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.core.vss import builtin_catalog

    settings = load_settings_or_exit()
    try:
        containers = load_containers(settings.data_act_containers_file)
    except DrivetrainError as e:
        fail(e)
    catalog = builtin_catalog()
    listed = []
    for name, container in containers.containers.items():
        paths = [s.path for s in containers.signals(name, catalog)]
        listed.append({"name": name, "description": container.description,
                       "signals": signal_metadata(catalog, paths),
                       "withheld": containers.withheld([name], catalog)})
    if as_json:
        emit_json(listed)
        return
    print_table("data act containers", [
        Column("container", "id"), Column("signals", "number"), Column("withheld", "number"),
        Column("description"),
    ], ((c["name"], len(c["signals"]), len(c["withheld"]), c["description"]) for c in listed))


@owner_app.command("add")
def owner_add(
    vin: VinArg, client: ClientOption,
    relation: Annotated[str, typer.Option("--relation", help="owner, lessee or fleet.")] = "owner",
    tenant: Tenant = "default", as_json: JsonOption = False,
) -> None:
    """Bind an owner account (a client of role owner) to a vehicle of the tenant."""
    from drivetrain.cloud.privacy.owners import add_owner

    binding = _on_database(lambda s: add_owner(s, tenant=tenant, vin=vin, client_id=client,
                                               relation=relation, actor=cli_actor()))
    if as_json:
        emit_json(binding.to_dict())
        return
    print(f"{vin} is bound to {client} ({binding.relation})")


@owner_app.command("remove")
def owner_remove(vin: VinArg, client: ClientOption, tenant: Tenant = "default",
                 as_json: JsonOption = False) -> None:
    """Unbind an owner account from a vehicle (its grants stay until revoked or expired)."""
    from drivetrain.cloud.privacy.owners import remove_owner

    binding = _on_database(lambda s: remove_owner(s, tenant=tenant, vin=vin, client_id=client,
                                                  actor=cli_actor()))
    if as_json:
        emit_json(binding.to_dict())
        return
    print(f"{vin} is no longer bound to {client}")


@owner_app.command("list")
def owner_list(
    vin: Annotated[str | None, typer.Option("--vin", help="Only this vehicle.")] = None,
    tenant: Tenant = "default", as_json: JsonOption = False,
) -> None:
    """The tenant's owner bindings."""
    from drivetrain.cloud.privacy.owners import list_owners

    bindings = _on_database(lambda s: list_owners(s, tenant, vin))
    if as_json:
        emit_json([b.to_dict() for b in bindings])
        return
    print_table(f"owner accounts in {tenant}", [
        Column("vin", "id"), Column("client", "id"), Column("relation", "id"),
        Column("since", "time"),
    ], ((b.vin, b.client_id, b.relation, b.since.strftime("%Y-%m-%d %H:%M")) for b in bindings))


@app.command("grants")
def grants_command(vin: VinArg, tenant: Tenant = "default", as_json: JsonOption = False) -> None:
    """A vehicle's container grants, oldest first, with their status now."""
    from drivetrain.cloud.fleet import get_vehicle
    from drivetrain.cloud.privacy.data_act import DataActGrant, data_act_grants

    def read(session: Session) -> list[DataActGrant]:
        get_vehicle(session, vin, tenant=tenant)
        return data_act_grants(session, tenant, vin)

    grants = _on_database(read)
    now = datetime.now(UTC)
    if as_json:
        emit_json([g.to_dict(now) for g in grants])
        return
    print_table(f"data act grants of {vin}", [
        Column("grant", "number"), Column("recipient", "id"), Column("containers"),
        Column("status", "id"), Column("expires", "time"),
    ], ((g.grant.grant_id, g.grant.recipient or "-", ", ".join(g.containers),
         g.grant.status(now), g.grant.expires_at.strftime("%Y-%m-%d %H:%M")
         if g.grant.expires_at else "never") for g in grants))


@app.command("access-log")
def access_log_command(
    vin: VinArg, tenant: Tenant = "default",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Most entries.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Every Data Act read of the vehicle, newest first (what its owner sees)."""
    from drivetrain.cloud.fleet import get_vehicle
    from drivetrain.cloud.privacy.data_act_log import access_log

    def read(session: Session) -> list[dict[str, object]]:
        get_vehicle(session, vin, tenant=tenant)
        return access_log(session, tenant, vin, limit)

    entries = _on_database(read)
    if as_json:
        emit_json(entries)
        return
    print_table(f"data act access log of {vin}", [
        Column("at", "time"), Column("client", "id"), Column("party", "id"),
        Column("action", "id"), Column("containers"), Column("values", "number"),
        Column("outcome", "id"),
    ], ((e["at"], e["client_id"], e["party"], e["action"], " ".join(e["containers"]),  # type: ignore[arg-type]
         e["values"], e["outcome"] if not e["error"] else f"refused: {e['error']}")
        for e in entries))


@app.command("metering")
def metering_command(
    month: Annotated[str | None, typer.Option("--month", help="YYYY-MM (default: all).")] = None,
    tenant: Tenant = "default", as_json: JsonOption = False,
) -> None:
    """What each recipient read per month, and its charge under the tariff in the settings."""
    from drivetrain.cloud.privacy.data_act_log import Tariff, metering, parse_month

    settings = load_settings_or_exit()
    tariff = Tariff(settings.data_act_cost_per_request_eur, settings.data_act_cost_per_mb_eur,
                    settings.data_act_margin)
    rows = _on_database(lambda s: metering(s, tenant, tariff, month=parse_month(month)),
                        settings)
    if as_json:
        emit_json(rows)
        return
    print_table(f"data act metering of {tenant}", [
        Column("month", "id"), Column("recipient", "id"), Column("requests", "number"),
        Column("values", "number"), Column("bytes", "number"), Column("sme", "id"),
        Column("charge EUR", "number"),
    ], ((r["month"], r["recipient"], r["requests"], r["values"], r["bytes"],
         "yes" if r["sme"] else "no", f"{r['charge_eur']:.4f}") for r in rows))


@recipient_app.command("set")
def recipient_set(
    client: Annotated[str, typer.Argument(help="The recipient's client id.", show_default=False)],
    sme: Annotated[bool, typer.Option("--sme/--no-sme",
                                      help="A small or medium enterprise pays cost only.")],
    tenant: Tenant = "default", as_json: JsonOption = False,
) -> None:
    """Mark a recipient (a third-party app) a small or medium enterprise, or not."""
    from drivetrain.cloud.privacy.data_act_log import set_sme

    _on_database(lambda s: set_sme(s, tenant=tenant, client_id=client, sme=sme,
                                   actor=cli_actor()))
    if as_json:
        emit_json({"client_id": client, "sme": sme})
        return
    print(f"{client}: {'small or medium enterprise (cost only)' if sme else 'cost + margin'}")
