"""`drivetrain command` and `drivetrain job`: signed commands and rollouts, through the API.

``command send`` sends one command to one vehicle; ``job create`` sends one to every vehicle a
fleet query selects, at a rate, in maintenance windows, with retries and an abort threshold;
``job status`` shows the live counts (and, with ``--vehicles``, each vehicle's state and
reason); ``job cancel`` stops one. Every command talks to the HTTP API with a bearer token
(see ``drivetrain.commands.api_client``).
"""

from __future__ import annotations

import json
import time
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

command_app = typer.Typer(help="Signed commands to one vehicle.", no_args_is_help=True)
job_app = typer.Typer(
    help="Jobs: a command to a query-selected group, rolled out by a policy.",
    no_args_is_help=True,
)
_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)
FINAL = ("finished", "cancelled", "aborted")

ArgOption = Annotated[
    list[str] | None,
    typer.Option("--arg", help="A command argument KEY=VALUE (VALUE as JSON, else text); "
                 "repeat for more."),
]
WaitOption = Annotated[
    float | None,
    typer.Option("--wait", min=0, help="Wait up to this many seconds for the outcome."),
]


def parse_args(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as a dict (VALUE parsed as JSON, else kept as text).

    Raises:
        typer.BadParameter: an item without ``=`` or with an empty key.
    """
    args: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE (e.g. times=3)")
        try:
            args[key.strip()] = json.loads(raw)
        except ValueError:
            args[key.strip()] = raw
    return args


def _policy(file: Path | None, overrides: dict[str, Any]) -> dict[str, Any] | None:
    policy: dict[str, Any] = {}
    if file is not None:
        try:
            policy = json.loads(file.read_text())
        except (OSError, ValueError) as e:
            fail(f"cannot read policy file {file}: {e}", code=2)
        if not isinstance(policy, dict):
            fail(f"policy file {file}: expected a JSON object", code=2)
    policy.update({k: v for k, v in overrides.items() if v is not None})
    return policy or None


def _counts_line(job: dict[str, Any]) -> str:
    c = job["counts"]
    parts = [f"{c[k]} {k.replace('_', ' ')}" for k in
             ("queued", "delivered", "succeeded", "failed", "timed_out", "cancelled") if c[k]]
    return f"{c['total']} vehicle(s): " + (", ".join(parts) if parts else "none")


def _show_job(job: dict[str, Any]) -> None:
    # Everything below came over the API from what users (and vehicles) wrote: escaped.
    _out.print(f"[bold]{safe(job['job_id'])}[/]  {safe(job['name'])}  "
               f"{safe('[' + job['status'] + ']')}  "
               f"{safe(job['origin'])}  created {safe(job['created_at'])} by "
               f"{safe(job['created_by'])}")
    if job["query"] is not None:
        _out.print(f"query: {safe(job['query'])}")
    _out.print(safe(_counts_line(job)))
    if job["reason"]:
        _out.print(f"reason: {safe(job['reason'])}")
    if job["waiting_reason"] and job["counts"]["queued"]:
        _out.print(f"[yellow]waiting: {safe(job['waiting_reason'])}[/]")


def _await_final(client: Any, path: str, wait_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    with _err.status("waiting for the outcome") as status:
        while True:
            job: dict[str, Any] = api_call(client, "GET", path).json()
            status.update(_counts_line(job))
            if job["status"] in FINAL or time.monotonic() >= deadline:
                return job
            time.sleep(0.5)


@command_app.command("send")
def send(
    vin: Annotated[str, typer.Argument(help="The vehicle's VIN.")],
    name: Annotated[str, typer.Argument(help="The command, e.g. flash_lights.")],
    token: TokenOption,
    arg: ArgOption = None,
    freshness_s: Annotated[float | None, typer.Option(
        "--freshness", help="Seconds the command stays valid on its way (default 300).")] = None,
    timeout_s: Annotated[float | None, typer.Option(
        "--timeout", help="Seconds to await the vehicle's answer (default freshness + 30).")
    ] = None,
    retries: Annotated[int | None, typer.Option("--retries", min=0, max=10,
                                                help="Resend after a failure.")] = None,
    wait: WaitOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send one signed command to one vehicle (offline: it gets it on reconnect, or times out)."""
    policy = _policy(None, {"freshness_s": freshness_s, "timeout_s": timeout_s,
                            "max_retries": retries})
    body = {"vin": vin, "name": name, "args": parse_args(arg), "policy": policy}
    with api_client(url, token) as client:
        command = api_call(client, "POST", "/v1/commands", json=body).json()
        if wait:
            command = _await_final(client, f"/v1/commands/{command['job_id']}", wait)
    if as_json:
        typer.echo(json.dumps(command, indent=2))
        return
    delivery = command.get("delivery") or {}
    _out.print(f"[bold]{safe(command['job_id'])}[/] {safe(name)} → {safe(vin)}: "
               f"{safe(delivery.get('state', '-'))}"
               + (f" ({safe(delivery['detail'])})" if delivery.get("detail") else "")
               + (f" — {safe(delivery['reason'])}" if delivery.get("reason") else ""))


@job_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The command, e.g. flash_lights.")],
    token: TokenOption,
    query: Annotated[str, typer.Option(
        "--query", help='Fleet query selecting the vehicles, e.g. \'region == "EU"\' ("" all).')],
    arg: ArgOption = None,
    rate: Annotated[float | None, typer.Option(
        "--rate", min=0.001, help="Vehicles per minute (default: no limit).")] = None,
    retries: Annotated[int | None, typer.Option("--retries", min=0, max=10)] = None,
    abort_at: Annotated[float | None, typer.Option(
        "--abort-at", min=0.001, max=1.0, help="Abort at this failure rate (0-1).")] = None,
    start_at: Annotated[str | None, typer.Option(
        "--start-at", help="Scheduled start, ISO 8601 (default now).")] = None,
    policy_file: Annotated[Path | None, typer.Option(
        "--policy", help="A rollout policy JSON file (see docs/commands.md); the options "
        "above override its fields.")] = None,
    job_name: Annotated[str | None, typer.Option("--name", help="A name for the job.")] = None,
    wait: WaitOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a job: the command to every vehicle the query selects, rolled out by a policy."""
    policy = _policy(policy_file, {"rate_per_min": rate, "max_retries": retries,
                                   "abort_failure_rate": abort_at})
    body: dict[str, Any] = {"command": {"name": name, "args": parse_args(arg)},
                            "query": query, "policy": policy, "name": job_name}
    if start_at is not None:
        body["start_at"] = start_at
    with api_client(url, token) as client:
        job = api_call(client, "POST", "/v1/jobs", json=body).json()
        if wait:
            job = _await_final(client, f"/v1/jobs/{job['job_id']}", wait)
    if as_json:
        typer.echo(json.dumps(job, indent=2))
        return
    _show_job(job)


@job_app.command("status")
def status(
    job_id: Annotated[str, typer.Argument(help="The job (or command) id.")],
    token: TokenOption,
    vehicles: Annotated[bool, typer.Option("--vehicles", help="List every vehicle's state.")
                        ] = False,
    state: Annotated[str | None, typer.Option("--state", help="With --vehicles: only this "
                                              "state (e.g. failed, timed_out).")] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """A job's live counts; with --vehicles each vehicle's state, attempts and reason."""
    rows: list[dict[str, Any]] = []
    with api_client(url, token) as client:
        job = api_call(client, "GET", f"/v1/jobs/{job_id}").json()
        if vehicles:
            after = 0
            while True:
                params: dict[str, Any] = {"limit": 1000, "after": after}
                if state:
                    params["state"] = state
                page = api_call(client, "GET", f"/v1/jobs/{job_id}/vehicles",
                                params=params).json()
                rows += page["deliveries"]
                if page["next_after"] is None:
                    break
                after = page["next_after"]
    if as_json:
        typer.echo(json.dumps({**job, "vehicles": rows} if vehicles else job, indent=2))
        return
    _show_job(job)
    if vehicles:
        if not rows:
            _out.print(f"no vehicle is {state}" if state else "the job has no vehicles")
            return
        table = Table("VIN", "state", "attempts", "sent", Column("answer / reason",
                                                                  overflow="fold"))
        for r in rows:
            table.add_row(cell(r["vin"]), cell(r["state"]), cell(r["attempts"]),
                          cell(r["sent_at"] or "-"), cell(r["reason"] or r["detail"] or ""))
        _out.print(table)


@job_app.command("list")
def list_command(
    token: TokenOption,
    state: Annotated[str | None, typer.Option("--status", help="Only jobs in this status.")
                     ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """The tenant's jobs and commands, newest first, with their counts."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["status"] = state
    with api_client(url, token) as client:
        jobs = api_call(client, "GET", "/v1/jobs", params=params).json()["jobs"]
    if as_json:
        typer.echo(json.dumps(jobs, indent=2))
        return
    if not jobs:
        _out.print("no jobs" + (f" with status {state}" if state else " yet: create one with "
                                "`drivetrain job create` or `drivetrain command send`"))
        return
    table = Table(Column("job", no_wrap=True), "name", "origin", "status",
                  Column("vehicles", overflow="fold"), Column("created", no_wrap=True))
    for j in jobs:
        table.add_row(cell(j["job_id"]), cell(j["name"]), cell(j["origin"]), cell(j["status"]),
                      cell(_counts_line(j)), cell(j["created_at"]))
    _out.print(table)


@job_app.command("cancel")
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job (or command) id.")],
    token: TokenOption,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (audited).")] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a scheduled or running job (messages waiting on vehicles are withdrawn)."""
    with api_client(url, token) as client:
        job = api_call(client, "POST", f"/v1/jobs/{job_id}/cancel",
                       json={"reason": reason}).json()
    if as_json:
        typer.echo(json.dumps(job, indent=2))
        return
    _show_job(job)
