"""Where a command finds the platform's data, said out loud.

Every command reads the data directory of its settings (``./.drivetrain`` in the folder it runs
in, unless ``DRIVETRAIN_DATA_DIR`` or ``data_dir`` in ``drivetrain.toml`` says otherwise).
Run from another folder, a read would quietly find nothing; so the long-running commands print
the directory they use, and a read that finds no platform data there says where it looked and
how to point at the right one, and exits non-zero.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from drivetrain.commands.db import fail

if TYPE_CHECKING:
    from drivetrain.core.settings import Settings

#: Exit code of a read that found no platform data.
NO_DATA_EXIT = 1

_HOW_TO_POINT = (
    "run the command in the folder where you ran `drivetrain sim fleet` / `drivetrain serve`, "
    "or point at a data directory with DRIVETRAIN_DATA_DIR=/path/to/.drivetrain "
    "(or data_dir in drivetrain.toml)"
)


def data_dir_source(settings: Settings) -> str:
    """Where the data directory setting came from, in words."""
    if os.environ.get("DRIVETRAIN_DATA_DIR"):
        return "from DRIVETRAIN_DATA_DIR"
    config = Path(os.environ.get("DRIVETRAIN_CONFIG", "drivetrain.toml"))
    if settings.data_dir != Path(".drivetrain") and config.is_file():
        return f"from {config}"
    return "the default: .drivetrain in the current folder"


def data_dir_line(settings: Settings) -> str:
    """``data directory: /abs/path (where the setting came from)``, for start-up banners."""
    return f"data directory: {settings.data_dir.resolve()} ({data_dir_source(settings)})"


def no_platform_data(settings: Settings, looked_for: str) -> NoReturn:
    """Exit (code 1) saying that ``looked_for`` is missing, where it looked and how to point
    at the right data directory."""
    fail(
        f"no {looked_for} in the data directory {settings.data_dir.resolve()} "
        f"({data_dir_source(settings)}): {_HOW_TO_POINT}",
        code=NO_DATA_EXIT,
    )


def require_state_database(settings: Settings) -> None:
    """Exit when the state database is the default SQLite file and it does not exist, rather
    than create an empty one and read nothing from it."""
    if settings.database_url or (settings.data_dir / "state.db").is_file():
        return
    fail(
        f"no state database (state.db) in the data directory {settings.data_dir.resolve()} "
        f"({data_dir_source(settings)}): {_HOW_TO_POINT}; or run `drivetrain db upgrade` to "
        "start an empty platform here",
        code=NO_DATA_EXIT,
    )
