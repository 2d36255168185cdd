"""Fixtures every test may use: the real data beside the project, and settings in a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drivetrain.core.settings import Settings, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
TEST_DATA = Path(__file__).resolve().parent / "data"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data in ../shared/data.

    A newcomer's fresh clone has no ../shared: there the full-data tests are skipped with this
    reason. In CI (CI=true) the data is required and its absence fails the test.
    """
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    reason = f"full-data test needs {SHARED_DATA} (the shared data beside the project); not present"
    if _in_ci():
        pytest.fail(f"{reason}, and CI=true requires it")
    pytest.skip(reason)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-deployment settings with every file under a fresh temp dir."""
    return load_settings(data_dir=tmp_path / "drivetrain")
