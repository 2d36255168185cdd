"""The ``drivetrain`` command: one Typer app assembling each capability's commands."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperOption

from drivetrain import __version__
from drivetrain.commands import (
    auth,
    batch,
    bench,
    campaign,
    can,
    commerce,
    data_act,
    db,
    demo,
    edge,
    fleet,
    ids,
    ingest,
    insights,
    jobs,
    lake,
    ota,
    portability,
    privacy,
    security,
    serve,
    sim,
    twin,
    vss,
    worker,
)


def _show_flags_as_flags() -> None:
    """Print nothing after an option that takes no value (``--dry-run``), as click does.

    Typer's Rich help writes a value type after every option, so flags read ``--dry-run
    <bool>`` as if they wanted a value. ``tests/test_cli.py`` checks every command's help.
    """
    original = TyperOption.display_type_rich
    if getattr(original, "_flags_as_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else original(self, ctx)

    display_type_rich._flags_as_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_show_flags_as_flags()

app = typer.Typer(
    name="drivetrain",
    help="Drivetrain: an open, self-hostable cloud for software-defined vehicles.",
    no_args_is_help=True,
    add_completion=True,
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
app.add_typer(batch.app, name="batch")
app.add_typer(ingest.app, name="ingest")
app.add_typer(worker.app, name="worker")
app.add_typer(fleet.app, name="fleet")
app.add_typer(edge.app, name="edge")
app.add_typer(sim.app, name="sim")
app.add_typer(twin.app, name="twin")
app.add_typer(privacy.app, name="privacy")
app.add_typer(data_act.app, name="data-act")
app.add_typer(jobs.command_app, name="command")
app.add_typer(jobs.job_app, name="job")
app.add_typer(campaign.app, name="campaign")
app.add_typer(commerce.app, name="commerce")
app.add_typer(bench.app, name="bench")
app.add_typer(ota.app, name="ota")
app.add_typer(insights.app, name="insights")
app.add_typer(ids.app, name="ids")
app.add_typer(security.app, name="security")
bench.app.command("ids", context_settings=ids.BENCH_CONTEXT)(ids.bench_ids)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("export")(portability.export)
app.command("import")(portability.import_command)


def main() -> None:
    app()
