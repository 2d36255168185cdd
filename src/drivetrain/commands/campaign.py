"""`drivetrain campaign`: write, approve and run collection campaigns, through the API.

``create FILE`` takes either the vehicle document alone (the file ``drivetrain edge
check-campaign`` checks) with the targeting given as options, or a whole definition (with a
``campaign`` key; options override its fields). The rest act on a campaign by id. Every command
talks to the HTTP API with a bearer token (see ``drivetrain.commands.api_client``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from drivetrain.commands.api_client import (
    JsonOption,
    TokenOption,
    UrlOption,
    api_call,
    api_client,
)
from drivetrain.commands.db import fail
from drivetrain.commands.output import cell, safe

app = typer.Typer(
    help="Collection campaigns: what vehicles collect, from which vehicles, when.",
    no_args_is_help=True,
)
_out = Console(highlight=False)
IdArgument = Annotated[str, typer.Argument(help="The campaign id.")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why (audited).")]


def load_definition(
    file: Path, *, query: str | None, vins: list[str] | None, max_vehicles: int | None,
    start_at: str | None, end_at: str | None,
) -> dict[str, Any]:
    """The definition to send: the file (a vehicle document or a whole definition) with the
    options applied.

    Raises:
        typer.Exit: the file cannot be read, or no targeting is given.
    """
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        fail(f"cannot read campaign {file}: {e}", code=2)
    if not isinstance(data, dict):
        fail(f"campaign {file}: expected a JSON object", code=2)
    definition: dict[str, Any] = dict(data) if "campaign" in data else {"campaign": data}
    targeting = dict(definition.get("targeting") or {})
    if query is not None:
        targeting["query"] = query
    if vins:
        targeting["vins"] = vins
    if max_vehicles is not None:
        targeting["max_vehicles"] = max_vehicles
    if not targeting:
        fail("no targeting: give --query (\"\" selects every vehicle) or --vin", code=2)
    definition["targeting"] = targeting
    if start_at is not None:
        definition["start_at"] = start_at
    if end_at is not None:
        definition["end_at"] = end_at
    return definition


def _show(campaign: dict[str, Any]) -> None:
    current = campaign["current"]
    document = current["definition"]["campaign"]
    targeting = current["definition"]["targeting"]
    in_force = campaign["version"] if campaign["version"] is not None else "none yet"
    # Everything below came over the API from what users (and vehicles) wrote: escaped.
    _out.print(f"[bold]{safe(campaign['campaign_id'])}[/]  {safe('[' + campaign['status'] + ']')}"
               f"  version in force {safe(in_force)}, newest {safe(campaign['latest_version'])} "
               f"({safe(current['status'])})")
    _out.print(f"signals: {safe(', '.join(document['signals']))}")
    for trigger in document.get("triggers") or []:
        _out.print(f"trigger {safe(trigger['name'])}: {safe(trigger['expression'])} "
                   f"(pre {safe(trigger.get('pre_s', 0))} s, post {safe(trigger.get('post_s', 0))} s)")
    who = (f"query {safe(repr(targeting['query']))}" if targeting["query"] is not None
           else f"{len(targeting['vins'])} VIN(s)")
    cap = f", at most {safe(targeting['max_vehicles'])}" if targeting["max_vehicles"] else ""
    _out.print(f"targets: {who}{cap}")
    window = current["definition"]
    _out.print(f"from {safe(window['start_at'] or 'approval')} to "
               f"{safe(window['end_at'] or 'retired')}")
    vehicles = campaign["vehicles"]
    _out.print("vehicles: " + safe(", ".join(f"{n} {s}" for s, n in sorted(vehicles.items()))
                                   or "none yet"))
    if campaign["reason"]:
        _out.print(f"reason: {safe(campaign['reason'])}")
    if campaign.get("webhook_secret"):  # only in the answer to writing a version
        _out.print(f"webhook secret (keep it; shown once): {safe(campaign['webhook_secret'])}")


def _print(campaign: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(campaign, indent=2))
    else:
        _show(campaign)


@app.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="The campaign as JSON (see docs/campaigns.md).")],
    token: TokenOption,
    query: Annotated[str | None, typer.Option(
        "--query", help='Fleet query selecting the vehicles, e.g. \'software."BMS" < '
        '"2.4.0"\'; evaluated continuously.')] = None,
    vin: Annotated[list[str] | None, typer.Option("--vin", help="Or: a target VIN (repeat).")
                   ] = None,
    max_vehicles: Annotated[int | None, typer.Option("--max-vehicles", min=1)] = None,
    start_at: Annotated[str | None, typer.Option("--start", help="ISO 8601 start (default: "
                                                 "on approval).")] = None,
    end_at: Annotated[str | None, typer.Option("--end", help="ISO 8601 end.")] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a campaign as a draft, checked against the tenant's signal catalog."""
    definition = load_definition(file, query=query, vins=vin, max_vehicles=max_vehicles,
                                 start_at=start_at, end_at=end_at)
    with api_client(url, token) as client:
        campaign = api_call(client, "POST", "/v1/campaigns", json=definition).json()
    _print(campaign, as_json)


@app.command("approve")
def approve(
    campaign_id: IdArgument, token: TokenOption,
    version: Annotated[int | None, typer.Option("--version", min=1,
                                                help="Default: the newest draft.")] = None,
    url: UrlOption = None, as_json: JsonOption = False,
) -> None:
    """Approve a draft version (by a second person where the tenant requires it)."""
    with api_client(url, token) as client:
        campaign = api_call(client, "POST", f"/v1/campaigns/{campaign_id}/approve",
                            json={"version": version}).json()
    _print(campaign, as_json)


@app.command("list")
def list_command(
    token: TokenOption,
    status: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    url: UrlOption = None, as_json: JsonOption = False,
) -> None:
    """The tenant's campaigns, newest first, with their vehicles by state."""
    params = {"status": status} if status else {}
    with api_client(url, token) as client:
        campaigns = api_call(client, "GET", "/v1/campaigns", params=params).json()
    if as_json:
        typer.echo(json.dumps(campaigns, indent=2))
        return
    if not campaigns:
        _out.print("no campaigns" + (f" with status {status}" if status else
                                     " yet: write one with `drivetrain campaign create`"))
        return
    table = Table(Column("campaign", no_wrap=True), "status", "version",
                  Column("vehicles", overflow="fold"), Column("created", no_wrap=True))
    for c in campaigns:
        vehicles = ", ".join(f"{n} {s}" for s, n in sorted(c["vehicles"].items())) or "-"
        table.add_row(cell(c["campaign_id"]), cell(c["status"]), cell(c["version"] or "-"),
                      cell(vehicles), cell(c["created_at"]))
    _out.print(table)


@app.command("show")
def show(campaign_id: IdArgument, token: TokenOption, url: UrlOption = None,
         as_json: JsonOption = False) -> None:
    """A campaign: its definition in force, life cycle and vehicles by state."""
    with api_client(url, token) as client:
        _print(api_call(client, "GET", f"/v1/campaigns/{campaign_id}").json(), as_json)


@app.command("status")
def status_command(
    campaign_id: IdArgument, token: TokenOption,
    state: Annotated[str | None, typer.Option("--state", help="Only vehicles in this state "
                                              "(pending, delivered, active, rejected, "
                                              "withdrawing, withdrawn).")] = None,
    url: UrlOption = None, as_json: JsonOption = False,
) -> None:
    """Each vehicle's state in the campaign, with the vehicle's reason for a rejection."""
    params = {"state": state} if state else {}
    with api_client(url, token) as client:
        campaign = api_call(client, "GET", f"/v1/campaigns/{campaign_id}").json()
        vehicles = api_call(client, "GET", f"/v1/campaigns/{campaign_id}/vehicles",
                            params=params).json()
    if as_json:
        typer.echo(json.dumps({"campaign": campaign, "vehicles": vehicles}, indent=2))
        return
    _show(campaign)
    if not vehicles:
        _out.print(f"no vehicle is {state}" if state else "no vehicle has been sent it yet")
        return
    table = Table("VIN", "state", "version", "updated", Column("reason / answer",
                                                               overflow="fold"))
    for v in vehicles:
        table.add_row(cell(v["vin"]), cell(v["state"]), cell(v["version"] or "-"),
                      cell(v["updated_at"]), cell(v["reason"] or v["detail"] or ""))
    _out.print(table)


def _change(action: str, campaign_id: str, token: str, reason: str | None, url: str | None,
            as_json: bool) -> None:
    with api_client(url, token) as client:
        campaign = api_call(client, "POST", f"/v1/campaigns/{campaign_id}/{action}",
                            json={"reason": reason}).json()
    _print(campaign, as_json)


@app.command("suspend")
def suspend(campaign_id: IdArgument, token: TokenOption, reason: ReasonOption = None,
            url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Suspend a running campaign (withdrawn from its vehicles until resumed)."""
    _change("suspend", campaign_id, token, reason, url, as_json)


@app.command("resume")
def resume(campaign_id: IdArgument, token: TokenOption, reason: ReasonOption = None,
           url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Resume a suspended campaign (its vehicles get it again)."""
    _change("resume", campaign_id, token, reason, url, as_json)


@app.command("retire")
def retire(campaign_id: IdArgument, token: TokenOption, reason: ReasonOption = None,
           url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Retire a campaign for good (withdrawn from every vehicle that has it)."""
    _change("retire", campaign_id, token, reason, url, as_json)
