"""The ``drivetrain`` executable: the full command tree, with a short way in for the one
command that is run hundreds of times a minute by machines (``ota tuf-client``).

Assembling every command imports most of the platform (CAN, the lake, the simulator);
the vehicle's TUF client needs none of it, so it is dispatched before that import.
"""

from __future__ import annotations

import sys

_FAST = ("ota", "tuf-client")


def main() -> None:
    argv = sys.argv[1:]
    if tuple(argv[:2]) == _FAST:
        from drivetrain.commands.tuf_client_cli import app

        app(args=argv[2:], prog_name="drivetrain ota tuf-client")
        return
    from drivetrain.cli import main as full

    full()
