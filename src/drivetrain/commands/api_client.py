"""What the command-line clients of the HTTP API share: the ``--url``/``--token``/``--json``
options and one call helper that turns an error status into the problem's detail.

Commands built on it (``drivetrain twin``, ``command``, ``job``, ``campaign``) talk to a
running API (``drivetrain serve``) with a bearer token, so the token's tenant and scopes apply
exactly as for any other client.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from drivetrain.commands.db import fail, load_settings_or_exit

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="API base URL; default: http://<api_host>:<api_port> from the settings."),
]
TokenOption = Annotated[
    str,
    typer.Option("--token", envvar="DRIVETRAIN_TOKEN", help="Bearer token (or DRIVETRAIN_TOKEN; "
                 "`drivetrain auth token` makes one).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of tables.")]
HTTP_TIMEOUT_S = 30.0


def base_url(url: str | None) -> str:
    """``url`` without a trailing slash, or the configured API address."""
    if url:
        return url.rstrip("/")
    settings = load_settings_or_exit()
    return f"http://{settings.api_host}:{settings.api_port}"


def api_client(url: str | None, token: str) -> Any:
    """An ``httpx.Client`` on the API with the bearer token."""
    import httpx

    return httpx.Client(
        base_url=base_url(url), headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT_S,
    )


def api_call(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """The response of one API call; exits with the problem's detail on an error status."""
    import httpx

    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as e:
        fail(f"cannot reach the API at {client.base_url}: {e} (is `drivetrain serve` running?)")
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        fail(f"{method} {path} answered {response.status_code}: {detail}")
    return response
