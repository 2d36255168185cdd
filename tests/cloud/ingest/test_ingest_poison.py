"""A poison message never stalls a worker: a failure of the pipeline on one message is retried,
the micro-batch is tried apart, the message is set aside as a processing_error dead letter
(raw bytes whole, replayable after the fix), and the valid messages behind it are stored. An
unavailable platform, by contrast, is waited out: nothing is set aside."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pytest
from ingest_helpers import SOC, SPEED, Fleet, telemetry, wall_clock_ns
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import (
    IngestPipeline,
    IngestWorker,
    MemoryLake,
    MemoryReportedState,
    RawMessage,
    dead_letter_payload,
    list_dead_letters,
    replay_dead_letters,
)
from drivetrain.cloud.ingest.isolation import Failure, is_transient, settle
from drivetrain.cloud.ingest.sinks import ReportedValue
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import set_consent
from drivetrain.core.errors import StorageError
from drivetrain.core.transport import InProcessTransport
from drivetrain.core.vss import Catalog, builtin_catalog
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES


class PoisonedTwins(MemoryReportedState):
    """Twins that fail (a bug on our side) on every report naming ``poison_vin``."""

    def __init__(self, poison_vin: str) -> None:
        super().__init__()
        self.poison_vin: str | None = poison_vin

    def apply_reported(
        self, session: Session, reports: Mapping[str, Mapping[str, ReportedValue]]
    ) -> None:
        if self.poison_vin in reports:
            raise ValueError(f"cannot store reports of {self.poison_vin}")
        super().apply_reported(session, reports)


def _run_worker(
    bus: InProcessTransport, pipeline: IngestPipeline, messages: list[RawMessage]
) -> IngestWorker:
    worker = IngestWorker(bus, pipeline, max_batch_messages=50, max_delay_ms=50).start()
    for message in messages:
        bus.publish(message.topic, message.payload)
    bus.drain(10)
    assert worker.wait_idle(60), "the worker stalled"
    return worker


def test_a_poison_message_is_set_aside_and_the_valid_messages_behind_it_are_stored(
    database: Database, fleet: Fleet, lake: MemoryLake
) -> None:
    now = wall_clock_ns()
    twins = PoisonedTwins(fleet.vin("eu2"))
    pipeline = IngestPipeline(database, lake, twins, vehicle_cache_ttl_s=0)
    good = [
        telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, now + i, 50.0)], seq=i)
        for i in range(20)
    ]
    poison = telemetry(fleet.vin("eu2"), fleet.key("eu2"), [(SOC, now, 60.0)], seq=1)
    with InProcessTransport() as bus:
        worker = _run_worker(bus, pipeline, [*good[:10], poison, *good[10:]])
        stats = worker.stats()
        worker.stop()
    rows = lake.rows()
    assert rows is not None
    stored = set(rows.column("batch_id").to_pylist())
    assert {m.payload for m in good} and len(stored) == 21  # every valid message behind it
    # (the poison's samples reached the lake before the twins failed: the lake keeps them
    # once per batch id, and the replay below does not store them again)
    assert stats.acknowledged == 21 and stats.processing_errors == 1
    with database.session() as session:
        (letter,) = list_dead_letters(session, tenant=None)
        assert letter.reason == "processing_error" and letter.level == "message"
        assert letter.vin == fleet.vin("eu2") and letter.tenant == "acme"
        assert "ValueError: cannot store reports" in letter.detail
        assert dead_letter_payload(session, letter.dead_letter_id, tenant=None) == poison.payload

    still = replay_dead_letters(pipeline, [letter.dead_letter_id])  # not fixed yet
    assert still[0].outcome == "still_refused" and "processing_error" in still[0].detail
    twins.poison_vin = None  # the fix
    (replayed,) = replay_dead_letters(pipeline, [letter.dead_letter_id])
    assert replayed.outcome == "replayed" and replayed.accepted == 1
    assert twins.values[fleet.vin("eu2")][SOC][0] == 60.0
    after = lake.rows()
    assert after is not None and after.num_rows == 21  # exactly once


def _recategorised(catalog: Catalog, path: str) -> Catalog:
    """``catalog`` with ``path`` in another privacy category than the lake's rule gives it."""
    spec = catalog.get(path)
    other = next(c for c in PRIVACY_CATEGORIES if c != spec.privacy_category)
    changed = dataclasses.replace(spec, privacy_category=other)
    return Catalog([changed if s.path == path else s for s in catalog], catalog.branches.values())


def test_a_custom_catalog_the_lake_disagrees_with_does_not_stall_the_worker(
    database: Database, fleet: Fleet, tmp_path: Path
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    with database.session() as session:
        set_consent(
            session, vin=vin, tenant="acme", categories=PRIVACY_CATEGORIES, source="test",
            actor="test",
        )  # fmt: skip
    lake = Lake(tmp_path / "data")
    catalog = _recategorised(builtin_catalog(), SOC)
    pipeline = IngestPipeline(
        database, lake, MemoryReportedState(), catalog=catalog, vehicle_cache_ttl_s=0
    )
    now = wall_clock_ns()
    refused = telemetry(vin, key, [(SOC, now, 50.0)], seq=1)  # the lake refuses its category
    stored = [telemetry(vin, key, [(SPEED, now + i, 30.0)], seq=2 + i) for i in range(5)]
    try:
        with InProcessTransport() as bus:
            worker = _run_worker(bus, pipeline, [refused, *stored])
            worker.stop()
        table = lake.sql("acme", "SELECT path, count(*) AS n FROM telemetry GROUP BY path")
    finally:
        lake.close()
    assert table.to_pylist() == [{"path": SPEED, "n": 5}]
    with database.session() as session:
        (letter,) = list_dead_letters(session, tenant="acme")
    assert letter.reason == "processing_error" and "category" in letter.detail


def test_an_unavailable_platform_is_waited_out_and_nothing_is_set_aside(
    database: Database, fleet: Fleet
) -> None:
    class DownLake(MemoryLake):
        failures = 5  # more than max_attempts: still never set aside

        def append(self, region: str, tenant: str, table: pa.Table):  # type: ignore[no-untyped-def]
            if self.failures:
                self.failures -= 1
                raise StorageError("lake unavailable") from OSError(28, "No space left on device")
            return super().append(region, tenant, table)

    lake = DownLake()
    pipeline = IngestPipeline(database, lake, MemoryReportedState())
    message = telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, wall_clock_ns(), 5.0)])
    with InProcessTransport() as bus:
        worker = _run_worker(bus, pipeline, [message])
        stats = worker.stats()
        worker.stop()
    assert stats.failures == 5 and stats.processing_errors == 0
    rows = lake.rows()
    assert rows is not None and rows.num_rows == 1
    with database.session() as session:
        assert list_dead_letters(session, tenant=None) == []


# --- the isolation loop on its own --------------------------------------------------------------
def _settle(
    messages: Sequence[int], poison: set[int], max_attempts: int = 2
) -> tuple[list[list[int]], list[int], int]:
    committed: list[list[int]] = []
    aside: list[int] = []

    def process(part: Sequence[int]) -> str:
        if poison & set(part):
            raise ValueError(f"poison in {list(part)}")
        committed.append(list(part))
        return "ok"

    def set_aside(message: int, failure: Failure) -> str:
        assert failure.attempts == max_attempts and isinstance(failure.error, ValueError)
        aside.append(message)
        return "aside"

    from drivetrain.cloud.ingest import isolation

    original = isolation.RETRY_MIN_S
    isolation.RETRY_MIN_S = 0.0  # type: ignore[misc]
    try:
        stats = settle(
            messages, process, set_aside, max_attempts=max_attempts, stop=threading.Event()
        )
    finally:
        isolation.RETRY_MIN_S = original  # type: ignore[misc]
    assert stats is not None
    return committed, aside, stats.failures


@pytest.mark.parametrize("poison", [{0}, {57}, {99}, {3, 4}, {10, 80}])
def test_bisection_sets_aside_exactly_the_poison_and_commits_every_other_message(
    poison: set[int],
) -> None:
    committed, aside, failures = _settle(range(100), poison)
    assert sorted(aside) == sorted(poison)
    stored = sorted(m for part in committed for m in part)
    assert stored == [m for m in range(100) if m not in poison]
    assert failures < 2 + 2 * 8 * len(poison) + 2 * len(poison)  # logarithmic, not linear


def test_failures_are_told_apart_by_their_cause() -> None:
    from sqlalchemy.exc import DataError, OperationalError

    def wrapped(cause: BaseException) -> StorageError:
        try:
            raise StorageError("state database failed") from cause
        except StorageError as e:
            return e

    assert is_transient(wrapped(OperationalError("SELECT 1", {}, Exception("database is locked"))))
    assert is_transient(wrapped(OSError(28, "No space left on device")))
    assert is_transient(StorageError("lake unavailable"))
    assert not is_transient(wrapped(DataError("INSERT", {}, Exception("NUL character"))))
    assert not is_transient(wrapped(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogate")))
    assert not is_transient(ValueError("cannot store"))
