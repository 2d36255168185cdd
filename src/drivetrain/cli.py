"""The ``drivetrain`` command: one Typer app assembling each capability's commands."""

from __future__ import annotations

import typer

from drivetrain import __version__
from drivetrain.commands import (
    bench,
    auth,
    can,
    db,
    demo,
    edge,
    fleet,
    ingest,
    lake,
    privacy,
    serve,
    sim,
    twin,
    vss,
    worker,
)

app = typer.Typer(
    name="drivetrain",
    help="Drivetrain: an open, self-hostable cloud for software-defined vehicles.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"drivetrain {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Drivetrain: an open, self-hostable cloud for software-defined vehicles."""


app.add_typer(can.app, name="can")
app.add_typer(vss.app, name="vss")
app.add_typer(db.app, name="db")
app.add_typer(auth.app, name="auth")
app.add_typer(lake.app, name="lake")
app.add_typer(ingest.app, name="ingest")
app.add_typer(worker.app, name="worker")
app.add_typer(fleet.app, name="fleet")
app.add_typer(edge.app, name="edge")
app.add_typer(sim.app, name="sim")
app.add_typer(twin.app, name="twin")
app.add_typer(privacy.app, name="privacy")
app.add_typer(bench.app, name="bench")
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)


def main() -> None:
    app()
