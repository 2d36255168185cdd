"""The `drivetrain` command lists its commands and prints its version."""

from __future__ import annotations

from typer.testing import CliRunner

from drivetrain import __version__
from drivetrain.cli import app


def test_version_is_printed() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"drivetrain {__version__}"


def test_help_lists_every_top_level_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "serve", "can", "vss", "db", "auth"):
        assert command in result.output
