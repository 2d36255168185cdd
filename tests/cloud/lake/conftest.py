"""Fixtures of the lake tests: a fresh lake over a temporary data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drivetrain.cloud.lake import Lake


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    """A lake over a fresh data directory (default roots)."""
    with Lake(tmp_path / "data") as opened:
        yield opened
