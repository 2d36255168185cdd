"""`drivetrain vss` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="vss commands.", no_args_is_help=True)
