"""Where maintenance meets its edges: a compaction and a retention run of one region take
turns instead of failing on each other's files, and the batch-id index keeps a bounded,
documented re-delivery window."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from lake_rows import NS_DAY, T0, T0_NS, make_rows

from drivetrain.cloud.lake import Lake, RetentionPolicy
from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import load_settings

DAY0 = T0.date()


def _batch_count(lake: Lake, region: str = "EU", tenant: str = "acme") -> int:
    store = lake._store(region, create=False)
    assert store is not None
    return store.index.batch_count(tenant)


def test_retention_waits_for_a_compaction_of_the_same_region(tmp_path: Path) -> None:
    """Retention would delete a file the compaction has read but not yet replaced; with the
    maintenance lock it starts only once the compaction is done, and both succeed."""
    release, compacting = threading.Event(), threading.Event()

    def pause_after_staging(step: str) -> None:
        if step == "compact.staged":
            compacting.set()
            assert release.wait(30)

    with Lake(tmp_path / "data", checkpoint=pause_after_staging) as lake:
        for seed in range(4):  # four small files on three days each
            lake.append("EU", "acme", make_rows(300, seed=seed, span_s=3 * 86400))
        errors: list[BaseException] = []
        finished: list[str] = []

        def run(name: str, work: object) -> None:
            try:
                work()  # type: ignore[operator]
                finished.append(name)
            except BaseException as e:  # noqa: BLE001 - handed to the test thread
                errors.append(e)

        compaction = threading.Thread(target=run, args=("compact", lambda: lake.compact("EU")))
        compaction.start()
        assert compacting.wait(30)
        policy = RetentionPolicy.from_mapping({"EU:*": 1})
        retention = threading.Thread(target=run, args=(
            "retention", lambda: lake.apply_retention(today=DAY0 + timedelta(days=3),
                                                      policy=policy)))
        retention.start()
        time.sleep(0.5)
        assert retention.is_alive() and finished == []  # waiting for the compaction
        release.set()
        compaction.join(60)
        retention.join(60)
        assert errors == []
        assert finished == ["compact", "retention"]
        # Only the last day (not older than one day on the 4th) is left, compacted.
        assert {f.day for f in lake.files("acme")} == {DAY0 + timedelta(days=2)}


def test_a_batch_is_skipped_within_the_window_and_stored_again_after_it(tmp_path: Path) -> None:
    with Lake(tmp_path / "data", batch_window_days=35) as lake:
        batch = make_rows(200, seed=1, batches=1)  # one batch id, samples on DAY0
        lake.append("EU", "acme", batch)
        lake.apply_retention(today=DAY0 + timedelta(days=35))  # last day == today - window
        assert _batch_count(lake) == 1
        again = lake.append("EU", "acme", batch)
        assert again.rows_skipped == 200 and again.rows_written == 0
        report = lake.apply_retention(today=DAY0 + timedelta(days=36))
        assert report.batch_ids_forgotten == 1 and _batch_count(lake) == 0
        late = lake.append("EU", "acme", batch)  # outside the window: stored a second time
        assert late.rows_written == 200
        assert lake.sql("acme", "SELECT count(*) AS n FROM telemetry").column("n")[0] \
            .as_py() == 400


def test_the_index_shrinks_without_any_retention_policy(tmp_path: Path) -> None:
    """Keeping every category forever (the default) no longer keeps every batch id forever."""
    with Lake(tmp_path / "data", batch_window_days=10) as lake:
        for day in range(20):
            lake.append("EU", "acme", make_rows(50, seed=day, batches=2,
                                                start_ns=T0_NS + day * NS_DAY, span_s=60))
        assert _batch_count(lake) == 40
        report = lake.apply_retention(today=DAY0 + timedelta(days=20))
        assert report.actions == ()  # no data expires
        assert _batch_count(lake) == 2 * 10  # days 10..19 are inside the window


def test_a_dry_run_forgets_no_batch_id(tmp_path: Path) -> None:
    with Lake(tmp_path / "data", batch_window_days=1) as lake:
        lake.append("EU", "acme", make_rows(10, batches=1))
        report = lake.apply_retention(today=date(2030, 1, 1), dry_run=True)
        assert report.batch_ids_forgotten == 0 and _batch_count(lake) == 1


def test_the_window_must_cover_the_oldest_sample_ingestion_accepts(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="lake_batch_window_days = 20 must cover"):
        load_settings(data_dir=tmp_path, lake_batch_window_days=20)
    settings = load_settings(data_dir=tmp_path, lake_batch_window_days=8,
                             ingest_max_sample_age_s=7 * 86_400)
    with Lake.open(settings) as lake:
        assert lake.batch_window_days == 8
