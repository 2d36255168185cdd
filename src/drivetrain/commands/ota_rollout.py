"""`drivetrain ota rollout`: health-gated rollouts and their UN R156 records, through the API.

``create`` stores a draft (one ECU's build to the vehicles a twin query selects, in waves);
``approve`` (another client) starts it; the platform judges each finished wave by itself on
the health it measures (``advance`` judges at once, without waiting out the observation); ``pause`` / ``resume`` / ``cancel``; ``show`` / ``vehicles`` follow it;
``report`` records a vehicle's progress; ``records`` exports the update records. Every command
talks to the HTTP API with a bearer token (see ``drivetrain.commands.api_client``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from drivetrain.commands.api_client import JsonOption, TokenOption, UrlOption, api_call, api_client
from drivetrain.commands.db import fail
from drivetrain.commands.output import cell, print_renderable, safe

app = typer.Typer(help="Health-gated rollouts over the API: create, approve, advance, follow.",
                  no_args_is_help=True)
_out = Console(highlight=False)

RolloutArg = Annotated[str, typer.Argument(help="The rollout id (ota-...).")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why, for the record.")]


def _show(r: dict[str, Any]) -> None:
    # Everything below came over the API from what users and vehicles wrote: escaped.
    _out.print(f"[bold]{safe(r['rollout_id'])}[/]  {safe(r['name'])}  "
               f"{safe('[' + r['status'] + ']')}  {safe(r['ecu'])} {safe(r['version'])}  "
               f"wave {r['wave']} of {len(r['waves'])}")
    _out.print(f"query: {safe(r['query'] or '(every vehicle)')}  created by "
               f"{safe(r['created_by'])}, approved by {safe(r['approved_by'] or '-')}")
    counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in r["counts"].items() if n)
    _out.print(f"vehicles: {safe(counts or 'none')}")
    if r["reason"]:
        _out.print(f"reason: {safe(r['reason'])}")
    if r["evidence"]:
        table = Table("KPI", "updated", "control", "limit", "margin", "vehicles (u/c)",
                      "verdict", title="health gate evidence")
        for kpi, e in r["evidence"].items():
            table.add_row(cell(kpi), cell(f"{e['updated']:.4g}"), cell(f"{e['control']:.4g}"),
                          cell(f"{e['limit']:.4g}"), cell(f"{e.get('margin', 0):.0%}"),
                          cell(f"{e.get('updated_vehicles', 0):.0f}/"
                               f"{e.get('control_vehicles', 0):.0f}"),
                          cell("WORSE" if e.get("failed") else "ok"))
        print_renderable(table, _out)


def _emit(data: Any, as_json: bool) -> bool:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    return as_json


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The campaign name, e.g. bms-2.6.1.")],
    token: TokenOption,
    ecu: Annotated[str, typer.Option("--ecu", help="The ECU it updates, e.g. BMS.")],
    image: Annotated[list[str], typer.Option(
        "--image", help="An image name of the Image repository (one per hardware id).")],
    query: Annotated[str, typer.Option(
        "--query", help='Twin query selecting the vehicles ("" all).')] = "",
    waves: Annotated[str, typer.Option(
        "--waves", help="Cumulative fractions, comma-separated, ending at 1.")] = "0.1,0.3,1",
    success: Annotated[float, typer.Option("--success", min=0.001, max=1.0,
                                           help="Share installed to advance.")] = 0.9,
    errors: Annotated[float, typer.Option("--errors", min=0.001, max=1.0,
                                          help="Share failed that stops it.")] = 0.2,
    margin: Annotated[float, typer.Option("--margin", min=0.0, max=1.0,
                                          help="Health-gate margin vs the control group.")
                      ] = 0.05,
    observe: Annotated[float, typer.Option(
        "--observe", min=0.0, max=30 * 86_400.0,
        help="Seconds the updated cars are observed after a wave before the gate.")] = 3600.0,
    min_control: Annotated[int, typer.Option(
        "--min-control", min=1, max=1_000_000,
        help="Least control vehicles with telemetry (fewer: the wave holds).")] = 3,
    window: Annotated[list[str] | None, typer.Option(
        "--window", help="Maintenance window DAYS/START-END in UTC, e.g. sat,sun/01:00-05:00 "
        "(repeat for more).")] = None,
    optional: Annotated[bool, typer.Option(
        "--optional", help="An optional update: the driver consents first.")] = False,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a draft rollout (another client approves it)."""
    try:
        fractions = [float(w) for w in waves.split(",")]
    except ValueError:
        fail(f"--waves {waves!r}: expected fractions like 0.1,0.3,1", code=2)
    windows = []
    for spec in window or []:
        days, sep, span = spec.partition("/")
        start, dash, end = span.partition("-")
        if not sep or not dash:
            fail(f"--window {spec!r}: expected DAYS/START-END, e.g. sat,sun/01:00-05:00", code=2)
        windows.append({"days": days.split(","), "start": start, "end": end})
    body = {"name": name, "ecu": ecu, "images": image, "query": query, "waves": fractions,
            "success_threshold": success, "error_threshold": errors, "health_margin": margin,
            "observe_s": observe, "min_control": min_control, "maintenance_windows": windows, "optional": optional}
    with api_client(url, token) as client:
        made = api_call(client, "POST", "/v1/ota/rollouts", json=body).json()
    if not _emit(made, as_json):
        _show(made)


@app.command("list")
def list_rollouts(
    token: TokenOption,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """The tenant's rollouts, newest first."""
    with api_client(url, token) as client:
        rows = api_call(client, "GET", "/v1/ota/rollouts", params={"limit": limit}).json()
    if _emit(rows, as_json):
        return
    if not rows:
        _out.print("no rollouts yet: create one with `drivetrain ota rollout create`")
        return
    table = Table("rollout", "name", "ECU", "version", "status", "wave", "installed",
                  "targets")
    for r in rows:
        table.add_row(cell(r["rollout_id"]), cell(r["name"]), cell(r["ecu"]),
                      cell(r["version"]), cell(r["status"]), cell(r["wave"]),
                      cell(r["counts"]["installed"]), cell(sum(r["counts"].values())))
    print_renderable(table, _out)


@app.command("show")
def show(rollout_id: RolloutArg, token: TokenOption, url: UrlOption = None,
         as_json: JsonOption = False) -> None:
    """A rollout: status, wave, reason, the health gate's evidence, vehicles per state."""
    with api_client(url, token) as client:
        r = api_call(client, "GET", f"/v1/ota/rollouts/{rollout_id}").json()
    if not _emit(r, as_json):
        _show(r)


def _action(action: str, rollout_id: str, token: str, url: str | None, as_json: bool,
            body: dict[str, Any] | None = None) -> None:
    with api_client(url, token) as client:
        r = api_call(client, "POST", f"/v1/ota/rollouts/{rollout_id}/{action}",
                     json=body).json()
    if not _emit(r, as_json):
        _show(r)


@app.command("approve")
def approve(rollout_id: RolloutArg, token: TokenOption, url: UrlOption = None,
            as_json: JsonOption = False) -> None:
    """Approve a draft (not its creator): the first wave is signed and notified."""
    _action("approve", rollout_id, token, url, as_json)


@app.command("pause")
def pause(rollout_id: RolloutArg, token: TokenOption, reason: ReasonOption = None,
          url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Pause a running rollout: no further wave starts."""
    _action("pause", rollout_id, token, url, as_json, {"reason": reason})


@app.command("resume")
def resume(rollout_id: RolloutArg, token: TokenOption, reason: ReasonOption = None,
           url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Resume a paused rollout."""
    _action("resume", rollout_id, token, url, as_json, {"reason": reason})


@app.command("cancel")
def cancel(rollout_id: RolloutArg, token: TokenOption, reason: ReasonOption = None,
           url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Cancel a rollout: notices not yet delivered are withdrawn."""
    _action("cancel", rollout_id, token, url, as_json, {"reason": reason})


@app.command("advance")
def advance(rollout_id: RolloutArg, token: TokenOption, url: UrlOption = None,
            as_json: JsonOption = False) -> None:
    """Judge the finished wave now on the health the platform measures (no waiting out the
    observation time) and start the next one."""
    _action("advance", rollout_id, token, url, as_json)


@app.command("report")
def report(
    rollout_id: RolloutArg,
    vin: Annotated[str, typer.Argument(help="The vehicle.")],
    state: Annotated[str, typer.Argument(
        help="downloading, installing, installed, failed or rolled_back.")],
    token: TokenOption,
    detail: Annotated[str, typer.Option("--detail", help="What happened.")] = "",
    preconditions: Annotated[str, typer.Option(
        "--preconditions", help="The preconditions checked, e.g. 'parked, charge 80 %'.")] = "",
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a vehicle's progress in a rollout."""
    body = {"state": state, "detail": detail, "preconditions": preconditions}
    with api_client(url, token) as client:
        v = api_call(client, "POST", f"/v1/ota/rollouts/{rollout_id}/vehicles/{vin}",
                     json=body).json()
    if not _emit(v, as_json):
        _out.print(f"{safe(v['vin'])}: {safe(v['state'])} (wave {v['wave']})")


@app.command("vehicles")
def vehicles(
    rollout_id: RolloutArg, token: TokenOption,
    state: Annotated[str | None, typer.Option("--state", help="Only this state.")] = None,
    url: UrlOption = None, as_json: JsonOption = False,
) -> None:
    """Each targeted vehicle: wave, state, detail."""
    rows: list[dict[str, Any]] = []
    with api_client(url, token) as client:
        after = -1
        while True:
            params: dict[str, Any] = {"limit": 1000, "after": after}
            if state:
                params["state"] = state
            page = api_call(client, "GET", f"/v1/ota/rollouts/{rollout_id}/vehicles",
                            params=params).json()
            rows += page
            if len(page) < 1000:
                break
            after = page[-1]["position"]
    if _emit(rows, as_json):
        return
    table = Table("VIN", "wave", "state", "before", "detail")
    for v in rows:
        table.add_row(cell(v["vin"]), cell(v["wave"]), cell(v["state"]),
                      cell(v["software_before"]), cell(v["detail"]))
    print_renderable(table, _out)


@app.command("records")
def records(
    token: TokenOption,
    rollout_id: Annotated[str | None, typer.Option("--rollout", help="Of one rollout.")] = None,
    vin: Annotated[str | None, typer.Option("--vin", help="Of one vehicle.")] = None,
    url: UrlOption = None, as_json: JsonOption = False,
) -> None:
    """UN R156 update records: software before and after, RXSWIN, preconditions, result."""
    rows: list[dict[str, Any]] = []
    with api_client(url, token) as client:
        after = 0
        while True:
            params: dict[str, Any] = {"limit": 1000, "after": after}
            if rollout_id:
                params["rollout_id"] = rollout_id
            if vin:
                params["vin"] = vin
            page = api_call(client, "GET", "/v1/ota/records", params=params).json()
            rows += page
            if len(page) < 1000:
                break
            after = page[-1]["record_id"]
    if _emit(rows, as_json):
        return
    table = Table("VIN", "campaign", "before", "after", "RXSWIN", "result", "ended")
    for r in rows:
        table.add_row(cell(r["vin"]), cell(r["campaign"]), cell(r["software_before"]),
                      cell(r["software_after"]), cell(r["rxswin"]), cell(r["result"]),
                      cell(r["ended_at"]))
    print_renderable(table, _out)
