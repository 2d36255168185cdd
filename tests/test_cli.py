"""The `drivetrain` command as a whole: its commands, help on every one of them, flags shown as
flags, shell completion, and --json on every command that lists or reads."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from drivetrain import __version__
from drivetrain.cli import app

#: Top-level commands a newcomer meets in `drivetrain --help` (others join them over time).
TOP_LEVEL = {"demo", "serve", "can", "vss", "db", "auth", "lake", "ingest", "worker", "fleet",
             "edge", "sim", "twin", "privacy"}

#: Every command that lists or reads, each of which prints one JSON document with --json.
READERS = [
    "vss list", "vss show", "can info", "fleet list", "lake query", "lake sql", "lake counts",
    "batch aggregate", "batch features", "batch compact", "batch retention",
    "ingest dead-letters list", "ingest dead-letters show", "ingest stats", "auth list-clients",
    "twin get", "twin query", "twin status", "privacy consent show", "privacy consent set",
    "privacy categories", "privacy request list", "privacy grants list",
    "privacy aggregate", "privacy budget", "privacy rotate-pseudonym-key",
    "privacy policy show", "privacy policy push", "db current",
    "edge buffer", "campaign list", "campaign show", "campaign status", "job list", "job status",
    "commerce catalog show", "commerce subscription list", "commerce subscription show",
    "commerce invoice list", "commerce invoice show", "commerce entitlement list",
    "commerce revenue", "commerce statement",
    "ota keys show", "ota image list", "ota director show",
    "ota rollout list", "ota rollout show", "ota rollout vehicles", "ota rollout records",
    "insights models", "insights card",
    "insights alerts", "insights show", "insights estimates", "insights centres", "insights appointments",
    "security events list", "security incidents list", "security incidents show",
    "security fleet list", "security responses list", "security report",
    "data-act containers", "data-act owner list", "data-act grants", "data-act access-log",
    "data-act metering",
]
#: Command names that read or list: a new command named so must offer --json too.
_READING_NAMES = {"list", "show", "info", "stats", "counts", "query", "sql", "status", "get",
                  "categories", "current", "buffer", "list-clients"}


def _commands(group: typer.core.TyperGroup, prefix: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], object]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name), command
        if isinstance(command, TyperGroup):
            yield from _commands(command, (*prefix, name))


ROOT = typer.main.get_command(app)
assert isinstance(ROOT, TyperGroup)
ALL_COMMANDS = [path for path, _ in _commands(ROOT)]


def test_version_is_printed() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"drivetrain {__version__}"


def test_help_lists_every_top_level_command_by_name() -> None:
    result = CliRunner(env={"COLUMNS": "120"}).invoke(app, ["--help"])
    assert result.exit_code == 0
    assert TOP_LEVEL <= set(ROOT.commands)
    commands_panel = result.output.split("Commands")[1]
    listed = set(re.findall(r"^│ ([\w-]+) ", commands_panel, re.MULTILINE))
    assert listed == set(ROOT.commands), set(ROOT.commands) ^ listed


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help_with_flags_shown_as_flags(command: tuple[str, ...]) -> None:
    result = CliRunner(env={"COLUMNS": "160", "NO_COLOR": "1"}).invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "<bool>" not in result.output  # a flag takes no value, so none is shown
    assert re.search(r"--help\s+Show this message", result.output)


def test_shell_completion_is_offered_and_completes_commands() -> None:
    result = CliRunner(env={"COLUMNS": "120"}).invoke(app, ["--help"])
    assert "--install-completion" in result.output and "--show-completion" in result.output
    completed = CliRunner().invoke(
        app, [], env={"_DRIVETRAIN_COMPLETE": "complete_bash", "COMP_WORDS": "drivetrain lake q",
                      "COMP_CWORD": "2"}, prog_name="drivetrain")
    assert completed.output.split() == ["query"]


def test_every_command_named_like_a_reader_is_in_the_json_list() -> None:
    named = {" ".join(path) for path in ALL_COMMANDS if path[-1] in _READING_NAMES}
    assert named <= set(READERS), named - set(READERS)


@pytest.mark.parametrize("command", READERS)
def test_every_reading_command_has_json(command: str) -> None:
    node: object = ROOT
    for part in command.split():
        node = node.commands[part]  # type: ignore[attr-defined]
    options = {opt for param in node.params for opt in param.opts}  # type: ignore[attr-defined]
    assert "--json" in options
