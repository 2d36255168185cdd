"""`drivetrain serve`: run the HTTP API."""

from __future__ import annotations


def serve() -> None:
    """Run the HTTP API."""
    raise NotImplementedError
