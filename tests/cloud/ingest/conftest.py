"""Fixtures for ingestion: a registered fleet (tenants, vehicles with keys, regions), payload
builders, and pipelines over the in-memory lake and reported-state sinks."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from drivetrain.cloud.fleet import VehicleCredentials, provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.ingest import (
    IngestPipeline,
    MemoryLake,
    MemoryReportedState,
    RawMessage,
    TimestampWindow,
)
from drivetrain.core.crypto import SigningKey
from drivetrain.core.transport import vehicle_topic
from drivetrain.core.wire import samples_table, seal_telemetry

CLOUD_KEY = SigningKey.from_seed(b"k" * 32)
#: The receiver's clock in these tests (fixed, so timestamps are exact).
NOW_NS = 1_795_000_000 * 1_000_000_000  # 2026-11-18T...Z
SECOND = 1_000_000_000

SPEED = "Vehicle.Speed"  # float, driving_behaviour
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"  # float [0,100], technical
LATITUDE = "Vehicle.CurrentLocation.Latitude"  # double [-90,90], location


@dataclass(frozen=True)
class Fleet:
    """Provisioned vehicles by name; ``creds[name].vin`` etc."""

    creds: dict[str, VehicleCredentials]

    def vin(self, name: str) -> str:
        return self.creds[name].vin

    def key(self, name: str) -> SigningKey:
        return self.creds[name].signing_key


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
            ("eu1", "acme", "EU"), ("eu2", "acme", "EU"), ("us1", "acme", "US"),
            ("gx1", "globex", "EU"),
        ):
            _, cred = provision_vehicle(
                session, tenant=tenant, model="compact-bev", region=region,
                cloud_key=CLOUD_KEY.verify_key, actor="test", rng=rng,
            )
            creds[name] = cred
    return Fleet(creds)


def telemetry(
    vin: str,
    key: SigningKey,
    samples: Sequence[tuple[str, int, float | None] | tuple[str, int, float | None, str | None]],
    *,
    batch_id: str | None = None,
    seq: int = 1,
) -> RawMessage:
    """A signed telemetry message of ``(path, ts_ns, value[, text])`` samples."""
    paths = sorted({s[0] for s in samples})
    index = [paths.index(s[0]) for s in samples]
    values = [float("nan") if s[2] is None else s[2] for s in samples]
    texts = [s[3] if len(s) > 3 else None for s in samples]  # type: ignore[misc]
    any_text = any(t is not None for t in texts) or any(s[2] is None for s in samples)
    table = samples_table(paths, index, [s[1] for s in samples], values,
                          texts if any_text else None)
    payload = seal_telemetry(vin, table, key=key, seq=seq, message_id=batch_id)
    return RawMessage(vehicle_topic(vin, "telemetry"), payload)


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


def wall_clock_ns() -> int:
    return time.time_ns()
