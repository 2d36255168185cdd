"""Fixtures for ingestion: a registered fleet (tenants, vehicles with keys, regions) and
pipelines over the in-memory lake and reported-state sinks."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from ingest_helpers import CLOUD_KEY, NOW_NS, Fleet

from drivetrain.cloud.fleet import VehicleCredentials, provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.ingest import (
    IngestPipeline,
    MemoryLake,
    MemoryReportedState,
    TimestampWindow,
)


@pytest.fixture
def fleet(database: Database) -> Fleet:
    """Tenants ``acme`` (vehicles ``eu1``, ``eu2`` in EU, ``us1`` in US) and ``globex``
    (``gx1`` in EU)."""
    creds: dict[str, VehicleCredentials] = {}
    rng = random.Random(7)
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        create_tenant(session, "globex", actor="test")
        for name, tenant, region in (
            ("eu1", "acme", "EU"),
            ("eu2", "acme", "EU"),
            ("us1", "acme", "US"),
            ("gx1", "globex", "EU"),
        ):
            _, cred = provision_vehicle(
                session,
                tenant=tenant,
                model="compact-bev",
                region=region,
                cloud_key=CLOUD_KEY.verify_key,
                actor="test",
                rng=rng,
            )
            creds[name] = cred
    return Fleet(creds)


@pytest.fixture
def lake() -> MemoryLake:
    return MemoryLake()


@pytest.fixture
def reported() -> MemoryReportedState:
    return MemoryReportedState()


@pytest.fixture
def make_pipeline(
    database: Database, lake: MemoryLake, reported: MemoryReportedState
) -> Callable[..., IngestPipeline]:
    """``make_pipeline(now_ns=NOW_NS, **kwargs)``: a pipeline whose clock stands still."""

    def make(now_ns: int = NOW_NS, **kwargs: object) -> IngestPipeline:
        kwargs.setdefault("window", TimestampWindow.of_seconds(30 * 86_400, 300))
        kwargs.setdefault("vehicle_cache_ttl_s", 0.0)
        return IngestPipeline(database, lake, reported, clock=lambda: now_ns, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def pipeline(make_pipeline: Callable[..., IngestPipeline]) -> IngestPipeline:
    return make_pipeline()
