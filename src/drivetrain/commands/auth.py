"""`drivetrain auth` commands: tenants, API clients and access tokens."""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer

from drivetrain.commands.db import fail, load_settings_or_exit, open_migrated_database
from drivetrain.commands.output import Column, JsonOption, emit_json, print_table, printable

app = typer.Typer(
    help="Tenants, API clients (principals) and OAuth2 access tokens.",
    no_args_is_help=True,
)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@app.command("create-tenant")
def create_tenant_command(
    name: str = typer.Argument(..., help="Tenant id: lower-case letters, digits and '-'."),
    display_name: str | None = typer.Option(None, "--display-name", help="Human-readable name."),
) -> None:
    """Create a tenant."""
    from drivetrain.cloud.infra import create_tenant
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            tenant = create_tenant(session, name, display_name=display_name, actor=_actor())
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    typer.echo(f"created tenant {tenant.tenant_id!r} ({printable(tenant.display_name)})")


@app.command("create-client")
def create_client_command(
    tenant: str = typer.Option(..., "--tenant", help="Tenant the client belongs to."),
    role: str = typer.Option(
        ...,
        "--role",
        help="admin, fleet_operator, security_analyst, service, third_party_app or read_only.",
    ),
    name: str | None = typer.Option(None, "--name", help="Human-readable name."),
    scope: list[str] | None = typer.Option(
        None, "--scope", help="Narrow to this scope (repeatable); default: all of the role's."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the credentials as JSON."),
) -> None:
    """Create an API client and print its secret (shown this once; only a hash is stored)."""
    from drivetrain.cloud.infra import create_client, parse_role, parse_scopes
    from drivetrain.cloud.infra.auth import format_scopes
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        scopes = parse_scopes(scope) if scope else None
        with database.session() as session:
            new = create_client(
                session,
                tenant=tenant,
                role=parse_role(role),
                name=name,
                scopes=scopes,
                actor=_actor(),
            )
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    client = new.client
    if as_json:
        document = {
            "client_id": client.client_id,
            "client_secret": new.client_secret,
            "tenant": client.tenant,
            "role": client.role.value,
            "scopes": format_scopes(client.scopes),
        }
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(f"client_id:     {client.client_id}")
    typer.echo(f"client_secret: {new.client_secret}")
    typer.echo(f"tenant: {client.tenant}  role: {client.role.value}")
    typer.echo(f"scopes: {format_scopes(client.scopes)}")
    typer.echo("The secret is not stored and will not be shown again.")


@app.command("list-clients")
def list_clients_command(
    tenant: Annotated[
        str, typer.Option("--tenant", help="Tenant whose clients to list.")
    ] = "default",
    as_json: JsonOption = False,
) -> None:
    """List a tenant's API clients (never their secrets)."""
    from drivetrain.cloud.infra import list_clients
    from drivetrain.cloud.infra.auth import format_scopes
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            clients = list_clients(session, tenant)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json([
            {"client_id": c.client_id, "name": c.name, "role": c.role.value,
             "scopes": sorted(s.value for s in c.scopes),
             "disabled": c.disabled, "created_at": c.created_at}
            for c in clients
        ])
        return
    print_table(f"{len(clients):,} client(s) of tenant {tenant!r}", [
        Column("client_id", "id"), Column("name"), Column("role"), Column("scopes"),
        Column("disabled"), Column("created (UTC)", "time"),
    ], (
        (c.client_id, c.name, c.role.value, format_scopes(c.scopes),
         "yes" if c.disabled else "", c.created_at.strftime("%Y-%m-%d %H:%M:%S"))
        for c in clients
    ))


@app.command("disable-client")
def disable_client_command(
    client_id: str = typer.Argument(..., help="Client to disable."),
    tenant: str = typer.Option(..., "--tenant", help="Tenant the client belongs to."),
) -> None:
    """Disable a client: it gets no new tokens and its live tokens are refused."""
    from drivetrain.cloud.infra import disable_client
    from drivetrain.core.errors import DrivetrainError

    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            disable_client(session, tenant=tenant, client_id=client_id, actor=_actor())
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    typer.echo(f"disabled client {client_id!r} of tenant {tenant!r}")


@app.command("token")
def token_command(
    client_id: str = typer.Option(..., "--client-id", help="Client id."),
    client_secret: str = typer.Option(
        ..., "--client-secret", envvar="DRIVETRAIN_CLIENT_SECRET", help="Client secret "
        "(or DRIVETRAIN_CLIENT_SECRET, which keeps it out of the shell history).",
    ),
    scope: str | None = typer.Option(None, "--scope", help="Space-separated scopes; default all."),
    url: str | None = typer.Option(
        None, "--url", help="Ask this running API (e.g. http://127.0.0.1:8080) instead of "
        "signing locally with the configured database and key.",
    ),
) -> None:
    """Obtain an access token (OAuth2 client credentials) and print it."""
    from drivetrain.core.errors import DrivetrainError

    if url is not None:
        typer.echo(_remote_token(url, client_id, client_secret, scope))
        return
    from drivetrain.cloud.infra import issue_access_token, resolve_token_key

    settings = load_settings_or_exit()
    database = open_migrated_database(settings)
    try:
        key = resolve_token_key(settings)
        with database.session() as session:
            issued = issue_access_token(
                session,
                client_id=client_id,
                client_secret=client_secret,
                requested_scopes=scope,
                key=key,
                ttl_s=settings.token_ttl_s,
            )
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    typer.echo(issued.access_token)


def _remote_token(url: str, client_id: str, client_secret: str, scope: str | None) -> str:
    import httpx

    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    if scope:
        form["scope"] = scope
    endpoint = url.rstrip("/") + "/v1/auth/token"
    try:
        response = httpx.post(endpoint, data=form, timeout=10.0)
    except httpx.HTTPError as e:
        fail(f"cannot reach {endpoint}: {e}")
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        fail(f"{endpoint} refused ({response.status_code}): {detail}")
    return str(response.json()["access_token"])
