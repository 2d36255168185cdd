"""Fixtures of the dispatcher's tests: a connected rig on each engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rig import Rig

from drivetrain.cloud.infra import Database


@pytest.fixture
def rig(database: Database) -> Iterator[Rig]:
    """acme: two EU vehicles and one US vehicle; globex: one EU vehicle; all online."""
    made = Rig(database)
    try:
        yield made
    finally:
        made.close()
