"""Exactly-once under crashes: a writer killed (SIGKILL) at any point of an append or a
compaction leaves a lake that, after reopening and re-appending the same batches, holds every
sample exactly once — and no stray file on disk."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from lake_crash_writer import crash_tables
from lake_rows import sorted_rows

from drivetrain.cloud.lake import Lake

WRITER = Path(__file__).with_name("lake_crash_writer.py")
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _run_writer(data_dir: Path, mode: str, step: str | None = None, nth: int = 1,
                kill_after_s: float | None = None) -> int:
    args = [sys.executable, str(WRITER), str(data_dir), mode]
    if step is not None:
        args += [step, str(nth)]
    process = subprocess.Popen(args, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
    if kill_after_s is not None:
        time.sleep(kill_after_s)
        os.kill(process.pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, -signal.SIGKILL), stderr
    return process.returncode


def _assert_exactly_once_after_redelivery(data_dir: Path) -> None:
    expected = pa.concat_tables(crash_tables()).unify_dictionaries()
    with Lake(data_dir) as lake:  # opening recovers what the killed writer left
        for table in crash_tables():
            lake.append("EU", "acme", table)
        stored = lake.sql("acme", "SELECT vehicle, path, ts, value, batch_id FROM telemetry")
        assert stored.num_rows == expected.num_rows
        assert sorted_rows(stored) == sorted_rows(expected)
        root = lake.root_of("EU")
        indexed = {root / f.name for f in lake.files("acme")}
        on_disk = set(root.glob("region=*/**/*.parquet"))
        assert on_disk == indexed, "files on disk that the index does not name (or vice versa)"
    leftovers = list((root / "_staging").iterdir())
    assert leftovers == [], f"staging not cleaned up: {leftovers}"


APPEND_STEPS = [
    ("append.staged", 1),        # files written and fsynced, nothing committed
    ("append.staged", 2),        # the first table fully done, the second staged
    ("append.committed", 1),     # index committed, nothing renamed
    ("append.renamed-one", 1),   # one of two files renamed
    ("append.renamed", 2),       # all renamed, not yet live
    ("append.finished", 3),      # everything done: the kill comes after the last commit
]


@pytest.mark.parametrize(("step", "nth"), APPEND_STEPS, ids=[f"{s}#{n}" for s, n in APPEND_STEPS])
def test_a_writer_killed_during_an_append_loses_and_duplicates_nothing(
    tmp_path: Path, step: str, nth: int
) -> None:
    assert _run_writer(tmp_path, "append", step, nth) == -signal.SIGKILL
    _assert_exactly_once_after_redelivery(tmp_path)


COMPACT_STEPS = ["compact.staged", "compact.committed", "compact.renamed-one",
                 "compact.renamed", "compact.finished"]


@pytest.mark.parametrize("step", COMPACT_STEPS)
def test_a_compaction_killed_at_any_step_leaves_each_sample_exactly_once(
    tmp_path: Path, step: str
) -> None:
    assert _run_writer(tmp_path, "append") == 0
    assert _run_writer(tmp_path, "compact", step, 1) == -signal.SIGKILL
    _assert_exactly_once_after_redelivery(tmp_path)
    with Lake(tmp_path) as lake:  # and a later compaction completes the job
        lake.compact("EU", target_rows=100_000)
        assert all(f.sorted for f in lake.files("acme"))
        assert lake.sql("acme", "SELECT count(*) AS n FROM telemetry")["n"][0].as_py() == 9000


@pytest.mark.slow
def test_writers_killed_at_random_moments_never_lose_or_duplicate_a_sample(
    tmp_path: Path, report_figure: object
) -> None:
    rng = random.Random(20240501)
    killed = 0
    for _ in range(8):
        if _run_writer(tmp_path, "loop", kill_after_s=rng.uniform(0.3, 2.5)) == -signal.SIGKILL:
            killed += 1
        _assert_exactly_once_after_redelivery(tmp_path)
    assert killed == 8
    report_figure(f"{killed} writers killed at random moments, each sample stored once")  # type: ignore[operator]


def test_a_live_writers_staging_is_left_alone_by_another_process_opening_the_lake(
    tmp_path: Path,
) -> None:
    with Lake(tmp_path) as writer:
        writer.append("EU", "acme", crash_tables()[0])
        staging = writer.root_of("EU") / "_staging"
        mine = [p for p in staging.iterdir() if p.is_dir()]
        probe = mine[0] / "in-flight.parquet"
        probe.write_bytes(b"a file being written")
        with Lake(tmp_path) as other:  # runs recovery: must not take over a live writer
            other.counts("acme")
        assert probe.exists()
        probe.unlink()


def test_two_processes_appending_the_same_batches_at_once_store_each_sample_once(
    tmp_path: Path,
) -> None:
    args = [sys.executable, str(WRITER), str(tmp_path), "append"]
    writers = [subprocess.Popen(args, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
    _assert_exactly_once_after_redelivery(tmp_path)
