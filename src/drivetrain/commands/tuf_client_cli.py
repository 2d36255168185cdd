"""`drivetrain ota tuf-client`: a TUF client for one repository, as the vehicle runs it.

The command-line protocol of the TUF conformance suite: global ``--metadata-dir``,
``--metadata-url``, ``--target-name`` (repeatable), ``--target-base-url``, ``--target-dir``,
then ``init TRUSTED_ROOT``, ``refresh`` or ``download``; exit code 0 on success, 1 on any
failure. Kept light (typer and the TUF client only): ``drivetrain.launcher`` runs it without
assembling the whole command tree, as the suite starts it hundreds of times.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from drivetrain.core.errors import DrivetrainError


def _fail(message: object) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code=1)


app = typer.Typer(
    help="A TUF client for one repository (init / refresh / download), as the vehicle runs it.",
    no_args_is_help=True,
)


@app.callback()
def tuf_options(
    ctx: typer.Context,
    metadata_dir: Annotated[Path | None, typer.Option(
        "--metadata-dir", help="Trusted local metadata (root.json, timestamp.json, ...); "
        "required.")] = None,
    metadata_url: Annotated[str | None, typer.Option(
        "--metadata-url", help="Base URL of the repository's metadata.")] = None,
    target_name: Annotated[list[str] | None, typer.Option(
        "--target-name", help="Target path to download (repeatable, processed in order).")
    ] = None,
    target_base_url: Annotated[str | None, typer.Option(
        "--target-base-url", help="Base URL of the repository's targets.")] = None,
    target_dir: Annotated[Path | None, typer.Option(
        "--target-dir", help="Where verified targets are stored.")] = None,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True,
                                         help="More logging (repeat).")] = 0,
) -> None:
    """Options shared by the init, refresh and download commands."""
    import logging

    logging.basicConfig(level=logging.DEBUG if verbose > 1 else
                        logging.INFO if verbose else logging.WARNING)
    ctx.obj = {"metadata_dir": metadata_dir, "metadata_url": metadata_url,
               "target_name": target_name or [], "target_base_url": target_base_url,
               "target_dir": target_dir}


@app.command("init")
def tuf_init(
    ctx: typer.Context,
    trusted_root: Annotated[Path, typer.Argument(help="The trusted root.json to start from.")],
) -> None:
    """Install the trusted root; no request is made."""
    from drivetrain.core import tuf_client

    _need(ctx, "metadata_dir")
    try:
        tuf_client.init(ctx.obj["metadata_dir"], trusted_root)
    except DrivetrainError as e:
        _fail(e)
    typer.echo(f"initialised {ctx.obj['metadata_dir']}")


def _need(ctx: typer.Context, *names: str) -> None:
    for name in names:
        if not ctx.obj[name]:
            _fail(f"--{name.replace('_', '-')} is required for this command")


@app.command("refresh")
def tuf_refresh(ctx: typer.Context) -> None:
    """Update the trusted top-level metadata (TUF client workflow)."""
    from drivetrain.core import tuf_client

    _need(ctx, "metadata_dir", "metadata_url")
    try:
        tuf_client.refresh(ctx.obj["metadata_dir"], ctx.obj["metadata_url"])
    except DrivetrainError as e:
        _fail(e)
    typer.echo(f"refreshed {ctx.obj['metadata_dir']}")


@app.command("download")
def tuf_download(ctx: typer.Context) -> None:
    """Refresh, then download and verify each --target-name in order."""
    from drivetrain.core import tuf_client

    _need(ctx, "metadata_dir", "metadata_url", "target_name", "target_base_url", "target_dir")
    try:
        done = tuf_client.download(ctx.obj["metadata_dir"], ctx.obj["metadata_url"],
                                   ctx.obj["target_name"], ctx.obj["target_dir"],
                                   ctx.obj["target_base_url"])
    except DrivetrainError as e:
        _fail(e)
    for d in done:
        typer.echo(f"{d.name}: {d.length} bytes {'(cached)' if d.cached else ''} -> {d.path}")
