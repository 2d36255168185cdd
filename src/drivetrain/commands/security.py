"""`drivetrain security` commands: security events vehicles reported, incidents, fleet
incidents, and the analyst's workflow — on the configured state database, as an operator with
access to it. Every workflow action is audited as ``security.incident.<action>`` with the actor
``cli:<user>``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from drivetrain.commands.db import cli_actor, fail, load_settings_or_exit, open_migrated_database
from drivetrain.commands.output import Column, JsonOption, emit_json, print_table, stdout_console

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from drivetrain.cloud.security import Incident

app = typer.Typer(help="Fleet security operations: events, incidents, fleet incidents.", no_args_is_help=True)
events_app = typer.Typer(help="Security events vehicles reported.", no_args_is_help=True)
incidents_app = typer.Typer(help="Incidents: list, show, and work them.", no_args_is_help=True)
fleet_app = typer.Typer(help="Fleet incidents: one signature on several vehicles.", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(incidents_app, name="incidents")
app.add_typer(fleet_app, name="fleet")

TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant whose data to read.")]
T = TypeVar("T")


def _in_session(work: Callable[[Session], T]) -> T:
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            return work(session)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()


def _iso_ns(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@app.command("correlate")
def correlate_command(tenant: TenantOption, as_json: JsonOption = False) -> None:
    """Turn the security events stored since the last run into incidents."""
    from drivetrain.cloud.security import correlate

    report = _in_session(lambda s: correlate(s, tenant=tenant))
    figures = {"events_read": report.events_read, "incidents_opened": report.incidents_opened,
               "incidents_updated": report.incidents_updated, "skipped": report.skipped}
    if as_json:
        emit_json(figures)
        return
    stdout_console().print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in figures.items()))


@events_app.command("list")
def events_list(
    tenant: TenantOption,
    vin: Annotated[str | None, typer.Option("--vin", help="Only this vehicle.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Security events vehicles reported (oldest first)."""
    from drivetrain.cloud.security import list_security_events

    events = _in_session(lambda s: list_security_events(s, tenant=tenant, vin=vin, limit=limit))
    if as_json:
        emit_json({"events": [{"event_id": e.event_id, "vin": e.vin, "ts": _iso_ns(e.ts_ns),
                               "severity": e.severity, "data": e.data} for e in events]})
        return
    if not events:
        stdout_console().print(f"no security events stored for tenant {tenant!r}" + (f", vehicle {vin}" if vin else ""))
        return
    print_table(
        f"{len(events)} security events",
        [Column("id", "number"), Column("vin", "id"), Column("time", "time"), Column("severity"),
         Column("signature", "id"), Column("count", "number")],
        [[e.event_id, e.vin, _iso_ns(e.ts_ns), e.severity, e.data.get("signature"), e.data.get("count")]
         for e in events],
    )


def _incident_rows(incidents: list[Incident]) -> list[list[Any]]:
    return [[i.incident_id, i.vin, i.model, i.signature, i.status, i.severity, i.assignee or "",
             i.event_count, _iso_ns(i.last_ns)] for i in incidents]


@incidents_app.command("list")
def incidents_list(
    tenant: TenantOption,
    status: Annotated[str | None, typer.Option("--status", help="open, acknowledged or resolved.")] = None,
    vin: Annotated[str | None, typer.Option("--vin", help="Only this vehicle.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Incidents, most recently updated first."""
    from drivetrain.cloud.security import list_incidents

    incidents = _in_session(lambda s: list_incidents(s, tenant=tenant, status=status, vin=vin, limit=limit))
    if as_json:
        emit_json({"incidents": [i.to_dict() for i in incidents]})
        return
    if not incidents:
        stdout_console().print(f"no incidents for tenant {tenant!r} (run `drivetrain security correlate` "
                               "after vehicles report security events)")
        return
    print_table(
        f"{len(incidents)} incidents",
        [Column("id", "number"), Column("vin", "id"), Column("model", "id"), Column("signature", "id"),
         Column("status"), Column("severity"), Column("assignee"), Column("events", "number"),
         Column("last event", "time")],
        _incident_rows(incidents),
    )


@incidents_app.command("show")
def incidents_show(
    incident_id: Annotated[int, typer.Argument(help="Incident id.", min=1, max=2**63 - 1)],
    tenant: TenantOption,
    as_json: JsonOption = False,
) -> None:
    """One incident with its history."""
    from drivetrain.cloud.security import get_incident

    incident = _in_session(lambda s: get_incident(s, tenant=tenant, incident_id=incident_id))
    _print_incident(incident, as_json)


def _print_incident(incident: Incident, as_json: bool) -> None:
    if as_json:
        emit_json(incident.to_dict())
        return
    print_table(None, [Column("id", "number"), Column("vin", "id"), Column("model", "id"), Column("signature", "id"),
                       Column("status"), Column("severity"), Column("assignee"), Column("events", "number"),
                       Column("last event", "time")], _incident_rows([incident]))
    print_table("history", [Column("at", "time"), Column("actor", "id"), Column("action"), Column("text")],
                [[a.at.isoformat(), a.actor, a.action, a.text] for a in incident.actions])


def _act(incident_id: int, tenant: str, action: str, text: str = "", assignee: str | None = None) -> None:
    from drivetrain.cloud.security import act_on_incident

    incident = _in_session(lambda s: act_on_incident(
        s, tenant=tenant, incident_id=incident_id, action=action, actor=cli_actor(), text=text,
        assignee=assignee))  # fmt: skip
    stdout_console().print(f"incident {incident.incident_id}: {incident.status}"
                           + (f", assigned to {incident.assignee}" if incident.assignee else ""))


IdArgument = Annotated[int, typer.Argument(help="Incident id.", min=1, max=2**63 - 1)]


@incidents_app.command("ack")
def incidents_ack(incident_id: IdArgument, tenant: TenantOption) -> None:
    """Acknowledge an incident."""
    _act(incident_id, tenant, "acknowledge")


@incidents_app.command("assign")
def incidents_assign(
    incident_id: IdArgument,
    tenant: TenantOption,
    to: Annotated[str, typer.Option("--to", help="Who works it.", show_default=False)],
) -> None:
    """Assign an incident to an analyst."""
    _act(incident_id, tenant, "assign", assignee=to)


@incidents_app.command("note")
def incidents_note(
    incident_id: IdArgument,
    tenant: TenantOption,
    text: Annotated[str, typer.Option("--text", help="The note.", show_default=False)],
) -> None:
    """Add a note to an incident."""
    _act(incident_id, tenant, "annotate", text=text)


@incidents_app.command("resolve")
def incidents_resolve(
    incident_id: IdArgument,
    tenant: TenantOption,
    text: Annotated[str, typer.Option("--text", help="How it was resolved.")] = "",
) -> None:
    """Resolve an incident (a later event of the same signature opens a new one)."""
    _act(incident_id, tenant, "resolve", text=text)


@fleet_app.command("list")
def fleet_list(
    tenant: TenantOption,
    window_s: Annotated[float, typer.Option("--window-s", min=1, help="Correlation window, seconds.")] = 86_400.0,
    by: Annotated[str, typer.Option("--by", help="Group vehicles by 'model' or 'region'.")] = "model",
    as_json: JsonOption = False,
) -> None:
    """Signatures seen on several vehicles of one model (or region) within the window."""
    from drivetrain.cloud.security import fleet_incidents

    if by not in ("model", "region"):
        fail(f"--by {by!r} is not known; expected model or region")
    found = _in_session(lambda s: fleet_incidents(s, tenant=tenant, window_s=window_s, group_by=by))  # type: ignore[arg-type]
    if as_json:
        emit_json({"fleet_incidents": [f.to_dict() for f in found]})
        return
    if not found:
        stdout_console().print(f"no signature on two or more vehicles of one {by} in the last {window_s:g} s")
        return
    print_table(
        f"{len(found)} fleet incidents",
        [Column("signature", "id"), Column(by, "id"), Column("vehicles", "number"), Column("events", "number"),
         Column("severity"), Column("last event", "time")],
        [[f.signature, f.group, len(f.vehicles), f.events, f.severity, _iso_ns(f.last_ns)] for f in found],
    )


responses_app = typer.Typer(help="Response playbooks: propose, approve, refuse, list.", no_args_is_help=True)
app.add_typer(responses_app, name="responses")


def _print_response(response: Any) -> None:
    stdout_console().print(
        f"response {response.response_id} ({response.playbook}, {len(response.vins)} vehicles): "
        f"{response.status}" + (f", job {response.job_id}" if response.job_id else "")
    )


@responses_app.command("propose")
def responses_propose(
    signature: Annotated[str, typer.Argument(help="Incident signature, e.g. cross_signal:0x0D0.")],
    tenant: TenantOption,
    playbook: Annotated[str, typer.Option("--playbook", help="disable_function, security_channel or collect_evidence.")],
    function: Annotated[str | None, typer.Option("--function", help="Function to disable (disable_function).")] = None,
) -> None:
    """Propose a playbook for every vehicle with an unresolved incident of SIGNATURE (an
    automatic playbook runs at once; the others wait for a second person's approval)."""
    from drivetrain.cloud.security import propose_response

    _print_response(_in_session(lambda s: propose_response(
        s, tenant=tenant, signature=signature, playbook=playbook, function=function, actor=cli_actor())))  # fmt: skip


@responses_app.command("approve")
def responses_approve(
    response_id: Annotated[int, typer.Argument(help="Response id.", min=1, max=2**63 - 1)], tenant: TenantOption
) -> None:
    """Approve a proposed response (not the one who proposed it) and send its commands."""
    from drivetrain.cloud.security import approve_response

    _print_response(_in_session(lambda s: approve_response(s, tenant=tenant, response_id=response_id,
                                                           actor=cli_actor())))


@responses_app.command("refuse")
def responses_refuse(
    response_id: Annotated[int, typer.Argument(help="Response id.", min=1, max=2**63 - 1)], tenant: TenantOption
) -> None:
    """Refuse a proposed response: nothing is sent."""
    from drivetrain.cloud.security import refuse_response

    _print_response(_in_session(lambda s: refuse_response(s, tenant=tenant, response_id=response_id,
                                                          actor=cli_actor())))


@responses_app.command("list")
def responses_list(
    tenant: TenantOption,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Responses, newest first."""
    from drivetrain.cloud.security import list_responses

    found = _in_session(lambda s: list_responses(s, tenant=tenant, limit=limit))
    if as_json:
        emit_json({"responses": [r.to_dict() for r in found]})
        return
    if not found:
        stdout_console().print(f"no responses in tenant {tenant!r}")
        return
    print_table(
        f"{len(found)} responses",
        [Column("id", "number"), Column("signature", "id"), Column("playbook"), Column("vehicles", "number"),
         Column("status"), Column("requested by", "id"), Column("decided by", "id"), Column("job", "id")],
        [[r.response_id, r.signature, r.playbook, len(r.vins), r.status, r.requested_by, r.decided_by or "",
          r.job_id or ""] for r in found],
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@app.command("report")
def report_command(
    tenant: TenantOption,
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="Incidents opened in this many last days.")] = 30,
    as_json: JsonOption = False,
) -> None:
    """The security posture (UN R155 monitoring): incidents by severity and status, and the
    times from the vehicle's detection to acknowledgement, response and resolution."""
    from drivetrain.cloud.security import security_report

    report = _in_session(lambda s: security_report(s, tenant=tenant, days=days))
    if as_json:
        emit_json(report.to_dict())
        return
    out = stdout_console()
    out.print(f"{report.incidents} incidents on {report.vehicles} vehicles ({report.events} events) "
              f"opened since {report.since.isoformat(timespec='seconds')}; responses: "
              f"{report.responses['executed']} executed, {report.awaiting_approval} awaiting approval, "
              f"{report.responses['refused']} refused", markup=False)
    print_table(
        "incidents by severity",
        [Column("severity"), Column("open", "number"), Column("acknowledged", "number"),
         Column("resolved", "number")],
        [[severity, counts["open"], counts["acknowledged"], counts["resolved"]]
         for severity, counts in report.by_severity.items()],
    )
    print_table(
        "from the vehicle's detection to",
        [Column("step"), Column("incidents", "number"), Column("median", "number"), Column("p90", "number"),
         Column("longest", "number")],
        [[step, stats.count, _duration(stats.median_s), _duration(stats.p90_s), _duration(stats.max_s)]
         for step, stats in (("acknowledgement", report.to_acknowledge), ("response sent", report.to_respond),
                             ("resolution", report.to_resolve))],
    )
