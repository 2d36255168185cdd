"""`drivetrain can` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="can commands.", no_args_is_help=True)
