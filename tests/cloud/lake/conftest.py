"""Fixtures of the lake tests: a fresh lake over a temporary data directory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_helpers import s3_options

from drivetrain.cloud.lake import Lake
from drivetrain.core.settings import load_settings
from tests.conftest import MOTO_BUCKET


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    """A lake over a fresh data directory (default roots)."""
    with Lake(tmp_path / "data") as opened:
        yield opened


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix in the moto bucket per test."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_lake(s3_endpoint: str, prefix: str, tmp_path: Path) -> Iterator[Lake]:
    """A lake whose regions are Delta tables under ``s3://lake/<prefix>`` (moto's S3)."""
    settings = load_settings(data_dir=tmp_path / "data", lake_url=f"s3://{MOTO_BUCKET}/{prefix}",
                             lake_storage_options=s3_options(s3_endpoint))
    with Lake.open(settings) as opened:
        yield opened
