"""Ingestion into the lake on object storage: the pipeline writes through ``Lake.open`` with
``lake_url`` (Delta tables on moto's S3 server), and a re-delivered batch is stored once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest_helpers import NOW_NS, SECOND, SOC, Fleet, telemetry

from drivetrain.cloud.ingest import IngestPipeline
from drivetrain.cloud.lake import Lake
from drivetrain.core.settings import load_settings
from tests.conftest import MOTO_BUCKET


@pytest.fixture
def lake(s3_endpoint: str, tmp_path: Path) -> Iterator[Lake]:  # replaces the in-memory lake
    settings = load_settings(
        data_dir=tmp_path / "lake-data", lake_url=f"s3://{MOTO_BUCKET}/i-{uuid.uuid4().hex[:12]}",
        lake_storage_options={"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ALLOW_HTTP": "true",
                              "AWS_REGION": "us-east-1"})
    with Lake.open(settings) as opened:
        yield opened


def test_ingested_batches_land_in_the_s3_lake_once_even_when_redelivered(
    pipeline: IngestPipeline, fleet: Fleet, lake: Lake,
) -> None:
    eu = telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS, 80.0),
                                                        (SOC, NOW_NS + SECOND, 79.5)])
    us = telemetry(fleet.vin("us1"), fleet.key("us1"), [(SOC, NOW_NS, 60.0)])
    first = pipeline.process([eu, us])
    again = pipeline.process([eu])
    assert [r.status for r in first.results] == ["stored", "stored"]
    assert [r.status for r in again.results] == ["duplicate"]
    assert lake.regions() == ["EU", "US"]
    stored = lake.sql("acme", "SELECT region, value FROM telemetry ORDER BY region, value")
    assert stored.column("region").to_pylist() == ["EU", "EU", "US"]
    assert stored.column("value").to_pylist() == [79.5, 80.0, 60.0]
    assert fleet.vin("eu1") not in str(lake.sql("acme", "SELECT * FROM telemetry").to_pylist())
