"""`drivetrain demo`: start the embedded platform and play the scenario."""

from __future__ import annotations


def demo() -> None:
    """Start the embedded platform and play every registered act."""
    raise NotImplementedError
