"""`drivetrain twin` commands: read and change vehicle twins through a running API.

Every command talks to the HTTP API (``drivetrain serve``, or the URL given with ``--url``)
with a bearer token (``--token`` or ``DRIVETRAIN_TOKEN``; get one with ``drivetrain auth
token``), so the token's tenant and scopes apply exactly as for any other client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console

from drivetrain.commands.api_client import HTTP_TIMEOUT_S, JsonOption, TokenOption, UrlOption
from drivetrain.commands.api_client import api_call as _call
from drivetrain.commands.api_client import api_client as _client
from drivetrain.commands.db import fail, load_settings_or_exit
from drivetrain.commands.output import Column, emit_json, format_number, print_table, safe

app = typer.Typer(
    help="Vehicle twins: reported and desired state, fleet queries, the change stream.",
    no_args_is_help=True,
)

_out = Console(highlight=False)

PurposeOption = Annotated[str | None, typer.Option(
    "--purpose", help="Why the state is read (e.g. fleet_operations): checked against the "
    "vehicle's consent; personal values it does not cover are withheld.")]

def parse_assignment(text: str) -> tuple[str, Any]:
    """``PATH=VALUE``: the value as JSON (80, 21.5, true, null, "text") or else as a string.

    Raises:
        typer.BadParameter: no ``=`` or an empty path.
    """
    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise typer.BadParameter(f"{text!r} is not PATH=VALUE (e.g. Vehicle.Cabin.Light.IsDomeOn=true)")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    if isinstance(value, (list, dict)):
        raise typer.BadParameter(f"{text!r}: a desired value is a number, true/false, null or text")
    return path.strip(), value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, (bool, str)) else str(value)


def _value(value: Any) -> Any:
    """A twin value for a table cell: numbers stay numbers (formatted like every table's)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return _fmt(value)


@app.command("get")
def get_command(
    vin: Annotated[str, typer.Argument(help="The vehicle's VIN.")],
    token: TokenOption,
    purpose: PurposeOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a twin: metadata, ECUs, reported values, desired items and the delta (personal
    values only for a --purpose that covers them)."""
    params = {"purpose": purpose} if purpose else None
    with _client(url, token) as client:
        twin = _call(client, "GET", f"/v1/twins/{vin}", params=params).json()
    if as_json:
        emit_json(twin)
        return
    _out.print(f"[bold]{safe(twin['vin'])}[/]  {safe(twin['model'])}  region "
               f"{safe(twin['region'])}  tenant {safe(twin['tenant'])}  owner "
               f"{safe(twin['owner'] or '-')}")
    _out.print(f"desired version {twin['version']} (ETag \"{twin['version']}\"), sent "
               f"{_fmt(twin['delivery']['sent_version'])}, acked "
               f"{_fmt(twin['delivery']['acked_version'])}")
    if twin["ecus"]:
        print_table("ECUs", [Column("ECU", "id"), Column("hardware id", "id"),
                             Column("software"), Column("source")], (
            (e["name"], _fmt(e["hardware_id"]), _fmt(e["software_version"]), e["source"])
            for e in twin["ecus"]
        ), _out)
    print_table("Desired state", [
        Column("path", "id"), Column("desired", "number"), Column("reported", "number"),
        Column("status"), Column("converged in", "number"), Column("reason"),
    ], (
        (i["path"], _value(i["value"]), _value(i["reported"]), i["status"],
         "-" if i["time_to_converge_s"] is None else f"{format_number(i['time_to_converge_s'])} s",
         i["reason"] or "") for i in twin["items"]
    ), _out)
    print_table("Reported state", [Column("path", "id"), Column("value", "number"),
                                   Column("measured", "time")], (
        (path, _value(r["value"]), r["ts"]) for path, r in sorted(twin["reported"].items())
    ), _out)
    for category, why in twin.get("withheld", {}).items():
        _out.print(f"[yellow]withheld {safe(category)}[/]: {safe(why)}")
    _out.print(f"delta (still to apply): {safe(json.dumps(twin['delta']['values']))}")


@app.command("set")
def set_command(
    assignments: Annotated[list[str], typer.Argument(help="PATH=VALUE pairs; VALUE null removes.")],
    token: TokenOption,
    vin: Annotated[str | None, typer.Option("--vin", help="The twin to change.")] = None,
    query: Annotated[str | None, typer.Option(
        "--query", help='Instead of --vin: change every twin this fleet query selects.')] = None,
    if_match: Annotated[int | None, typer.Option(
        "--if-match", help="Version the change is based on; default: the current one, read first.",
    )] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Make the desired state exactly these values.")] = False,
    ttl_s: Annotated[int | None, typer.Option("--ttl", help="Seconds the values are wanted (default 7 days).")] = None,
    url: UrlOption = None,
) -> None:
    """Set desired values on one twin (--vin) or on every twin a query selects (--query)."""
    if (vin is None) == (query is None):
        fail("give exactly one of --vin and --query", code=2)
    values = dict(parse_assignment(a) for a in assignments)
    with _client(url, token) as client:
        if query is not None:
            if replace or if_match is not None:
                fail("--replace and --if-match apply to one twin (--vin), not to --query", code=2)
            body: dict[str, Any] = {"query": query, "values": values, "ttl_s": ttl_s}
            result = _call(client, "POST", "/v1/twins/desired", json=body).json()
            _out.print(f"set {json.dumps(result['values'])} on {result['matched']} twin(s)")
            return
        if if_match is None:
            if_match = _call(client, "GET", f"/v1/twins/{vin}").json()["version"]
        method = "PUT" if replace else "PATCH"
        response = _call(client, method, f"/v1/twins/{vin}/desired",
                         json={"values": values, "ttl_s": ttl_s},
                         headers={"If-Match": f'"{if_match}"'})
        twin = response.json()
    _out.print(f"{vin}: desired version {twin['version']}; still to apply: "
               f"{json.dumps(twin['delta']['values'])}")


@app.command("query")
def query_command(
    token: TokenOption,
    query: Annotated[str, typer.Argument(help='Fleet query, e.g. \'region == "EU"\'; empty: all.')] = "",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Twins per page.")] = 100,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow the cursor through every page.")] = False,
    purpose: PurposeOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the twins a fleet query selects, with their reconciliation counts."""
    from rich.progress import Progress

    twins: list[dict[str, Any]] = []
    with _client(url, token) as client, Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("querying", total=None)
        cursor = None
        while True:
            params: dict[str, Any] = {"query": query, "limit": limit}
            if purpose:
                params["purpose"] = purpose
            if cursor:
                params["cursor"] = cursor
            page = _call(client, "GET", "/v1/twins", params=params).json()
            twins += page["twins"]
            bar.update(task, total=page["total"], completed=len(twins))
            cursor = page["next_cursor"]
            if not all_pages or cursor is None:
                break
    if as_json:
        emit_json({"total": page["total"], "next_cursor": cursor, "twins": twins})
        return
    print_table(None, [Column("VIN", "id"), Column("model"), Column("region"),
                       Column("version", "number"), Column("pending", "number"),
                       Column("converged", "number"), Column("failed", "number")], (
        (t["vin"], t["model"], t["region"], t["version"], t["counts"]["pending"],
         t["counts"]["converged"], t["counts"]["failed"]) for t in twins
    ), _out)
    more = f"; next page: --cursor {cursor}" if cursor else ""
    _out.print(f"{len(twins):,} shown of {page['total']:,} matching{more}")


@app.command("status")
def status_command(
    token: TokenOption,
    query: Annotated[str, typer.Argument(help="Fleet query; empty: all twins.")] = "",
    path: Annotated[str | None, typer.Option("--path", help="Only this VSS path.")] = None,
    purpose: PurposeOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """How the desired items of the selected twins stand: pending, converged, failed."""
    params: dict[str, Any] = {"query": query}
    if purpose:
        params["purpose"] = purpose
    if path:
        params["path"] = path
    with _client(url, token) as client:
        s = _call(client, "GET", "/v1/twins/reconciliation", params=params).json()
    if as_json:
        emit_json(s)
        return
    p50, worst = s["time_to_converge_p50_s"], s["time_to_converge_max_s"]
    took = f"; time to converge p50 {p50:.2f} s, max {worst:.2f} s" if p50 is not None else ""
    _out.print(f"{s['twins']} twins, {s['items']} desired items: {s['pending']} pending, "
               f"{s['converged']} converged, {s['failed']} failed{took}")
    for reason, count in s["failure_reasons"].items():
        _out.print(f"  failed {count}x: {safe(reason)}")
    for reason, count in s.get("pending_reasons", {}).items():
        _out.print(f"  pending {count}x: {safe(reason)}")


def _events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind, data = "message", ""
    for line in lines:
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data += line.split(":", 1)[1].strip()
        elif not line and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


@app.command("watch")
def watch_command(
    token: TokenOption,
    query: Annotated[str, typer.Option("--query", help="Only twins this fleet query selects.")] = "",
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", help="Only these kinds (repeat): reported, desired, converged, failed, ack, ecu.",
    )] = None,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Stop after this many events.")] = None,
    timeout_s: Annotated[float | None, typer.Option("--timeout", help="Stop after this many seconds.")] = None,
    purpose: PurposeOption = None,
    url: UrlOption = None,
) -> None:
    """Print twin changes as they happen (the server-sent change stream; personal signals
    only for a --purpose that covers them)."""
    import httpx

    params: dict[str, Any] = {"query": query}
    if purpose:
        params["purpose"] = purpose
    if kind:
        params["kind"] = kind
    if count is not None:
        params["max_events"] = count
    if timeout_s is not None:
        params["timeout_s"] = timeout_s
    seen = 0
    with _client(url, token) as client:
        try:
            with client.stream("GET", "/v1/twins/changes", params=params,
                               timeout=httpx.Timeout(HTTP_TIMEOUT_S, read=None)) as response:
                if response.status_code >= 400:
                    response.read()
                    fail(f"the change stream answered {response.status_code}: "
                         f"{response.json().get('detail', response.text)}")
                for event, data in _events(response.iter_lines()):
                    seen += 1
                    if event == "overflow":
                        _out.print(f"[yellow]{data['lost']} change(s) lost: this watcher fell behind[/]")
                        continue
                    paths = ", ".join(data["paths"])
                    version = f" v{data['version']}" if data.get("version") is not None else ""
                    _out.print(safe(f"{data['at']}  {data['vin']}  {event}{version}  {paths}"))
        except httpx.HTTPError as e:
            fail(f"change stream from {client.base_url} failed: {e}")
        except KeyboardInterrupt:
            pass
    _out.print(f"{seen} event(s)", style="dim")


@app.command("reconcile")
def reconcile_command(
    broker: Annotated[str | None, typer.Option(
        "--broker", help="MQTT 5 broker of the vehicle link, e.g. mqtt://127.0.0.1:1883 "
        "(default: the broker_url setting).")] = None,
    client_id: Annotated[str, typer.Option("--client-id", help="MQTT client id.")] = "twins-reconciler",
    poll_interval_s: Annotated[float, typer.Option(
        "--poll-interval", min=0.1, help="Longest wait between rounds, seconds.")] = 2.0,
    username: Annotated[str | None, typer.Option("--username", help="Broker user name.")] = None,
    ca_file: Annotated[str | None, typer.Option("--ca-file", help="CA bundle for mqtts://.")] = None,
    cert_file: Annotated[str | None, typer.Option("--cert-file", help="Client certificate (mTLS).")] = None,
    key_file: Annotated[str | None, typer.Option("--key-file", help="Client key (mTLS).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Run one round and exit.")] = False,
) -> None:
    """Publish desired-state deltas to the vehicles: signed with the cloud key, retained, QoS 1.

    The reconciler of a deployment where the API and the vehicle link run apart (the embedded
    platform runs its own). It works from the state database: every twin whose desired version
    changed or whose items expired is published on dt/v1/{VIN}/state/desired. SIGTERM or
    Ctrl-C stops it after its round. The broker password is the
    broker_password setting ($DRIVETRAIN_BROKER_PASSWORD).
    """
    import signal
    import threading

    from drivetrain.cloud.fleet import cloud_signing_key
    from drivetrain.cloud.twins import Reconciler
    from drivetrain.commands.db import open_migrated_database
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.core.transport.factory import open_transport

    settings = load_settings_or_exit()
    url = broker or settings.broker_url
    if not url:
        fail("no broker: pass --broker mqtt://host:port or set DRIVETRAIN_BROKER_URL", code=2)
    try:
        key = cloud_signing_key(settings)
    except DrivetrainError as e:
        fail(e)
    database = open_migrated_database(settings)
    try:
        transport = open_transport(
            url, client_id=client_id, username=username,
            password=settings.broker_password, ca_file=ca_file,
            cert_file=cert_file, key_file=key_file,
        )
    except DrivetrainError as e:
        database.dispose()
        fail(e)
    reconciler = Reconciler(database, transport, key, poll_interval_s=poll_interval_s)
    err = Console(stderr=True, highlight=False)
    try:
        if once:
            report = reconciler.run_once()
            err.print(f"published {report.sent} delta(s), expired {report.expired} item(s)")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
        reconciler.start()
        err.print(f"reconciling desired state to {url} (state: {database.display_url})")
        while not stop.wait(10.0):
            err.print(f"{reconciler.rounds} rounds, {reconciler.sent} deltas published, "
                      f"{reconciler.errors} failed rounds")
    except DrivetrainError as e:
        fail(e)
    finally:
        reconciler.stop()
        transport.close()
        database.dispose()
    err.print(f"stopped: {reconciler.sent} deltas published in {reconciler.rounds} rounds")
