"""Directories and files only their owner can read: the data directory holds the state
database (with the per-tenant pseudonym keys), signing keys and telemetry, so it is created
0700 and its database files 0600, whatever the process umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

PRIVATE_DIR_MODE: Final = 0o700
PRIVATE_FILE_MODE: Final = 0o600


def make_private_dir(path: Path, *, tighten: bool = False) -> None:
    """Create ``path`` and any missing parents, each 0700 (mkdir's ``mode`` covers only the
    last one). ``tighten``: also take group and other access away from ``path`` if it
    already exists with it (a data directory an older version made world-readable).

    Raises ``OSError`` as :func:`os.mkdir` does.
    """
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(directory, PRIVATE_DIR_MODE)  # the umask may have narrowed mkdir's mode
    if tighten:
        _tighten(path, PRIVATE_DIR_MODE)


def make_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist; take group and other
    access away from an existing one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        _tighten(path, PRIVATE_FILE_MODE)
    else:
        os.close(fd)


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077 and path.stat().st_uid == os.getuid():
        os.chmod(path, current & mode)
