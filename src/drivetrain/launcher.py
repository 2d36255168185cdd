"""The ``drivetrain`` executable: the full command tree, with a short way in for the one
command that machines run hundreds of times a minute (``ota tuf-client``).

Assembling every command imports most of the platform (CAN, the lake, the simulator), and
even the command-line framework costs more than the TUF client itself; so ``ota tuf-client``
with one of its protocol commands (``init``, ``refresh``, ``download``) is parsed here with
argparse and run against ``drivetrain.core.tuf_client`` directly. ``--help`` and anything
else go to the full command tree (``drivetrain.commands.tuf_client_cli`` documents the same
options).
"""

from __future__ import annotations

import argparse
import sys

_FAST = ("ota", "tuf-client")
_PROTOCOL = ("init", "refresh", "download")


def _tuf_client(argv: list[str]) -> int:
    """The TUF conformance protocol: exit 0 on success, 1 on any failure."""
    from pathlib import Path

    from drivetrain.core import tuf_client
    from drivetrain.core.errors import DrivetrainError

    parser = argparse.ArgumentParser(prog="drivetrain ota tuf-client")
    parser.add_argument("--metadata-dir", type=Path, required=True)
    parser.add_argument("--metadata-url")
    parser.add_argument("--target-name", action="append", default=[])
    parser.add_argument("--target-base-url")
    parser.add_argument("--target-dir", type=Path)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init").add_argument("trusted_root", type=Path)
    commands.add_parser("refresh")
    commands.add_parser("download")
    args = parser.parse_args(argv)
    needed = {"init": (), "refresh": ("metadata_url",),
              "download": ("metadata_url", "target_name", "target_base_url", "target_dir")}
    missing = [n for n in needed[args.command] if not getattr(args, n)]
    if missing:
        print(f"error: --{missing[0].replace('_', '-')} is required for {args.command}",
              file=sys.stderr)
        return 1
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO)
    try:
        if args.command == "init":
            tuf_client.init(args.metadata_dir, args.trusted_root)
            print(f"initialised {args.metadata_dir}")
        elif args.command == "refresh":
            tuf_client.refresh(args.metadata_dir, args.metadata_url)
            print(f"refreshed {args.metadata_dir}")
        else:
            for d in tuf_client.download(args.metadata_dir, args.metadata_url, args.target_name,
                                         args.target_dir, args.target_base_url):
                print(f"{d.name}: {d.length} bytes{' (cached)' if d.cached else ''} -> {d.path}")
    except DrivetrainError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    argv = sys.argv[1:]
    if tuple(argv[:2]) == _FAST and "--help" not in argv and "-h" not in argv \
            and any(word in _PROTOCOL for word in argv[2:]):
        sys.exit(_tuf_client(argv[2:]))
    from drivetrain.cli import main as full

    full()
