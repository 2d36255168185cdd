"""Shared fixture for the act tests: one embedded platform per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivetrain.demo import EmbeddedPlatform, PlatformHandles, demo_settings


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformHandles]:
    """A started embedded platform under a fresh data dir, stopped after the module."""
    embedded = EmbeddedPlatform(demo_settings(tmp_path_factory.mktemp("demo")))
    try:
        yield embedded.start()
    finally:
        embedded.stop()
