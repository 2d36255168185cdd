"""Exactly-once under crashes on the lake on object storage: a writer appending to the Delta
lake on moto's S3 server is killed (SIGKILL) before, during and after its commit, and at
random moments of appends and compactions; after a restart and the re-delivery of every
batch, each batch id holds exactly its rows — none lost, none twice."""

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
from lake_crash_writer import crash_tables, open_lake
from lake_rows import sorted_rows
from s3_helpers import s3_keys

from tests.conftest import MOTO_BUCKET

WRITER = Path(__file__).with_name("lake_crash_writer.py")
HERE = Path(__file__).parent


def _run_writer(
    env: dict[str, str],
    data_dir: Path,
    mode: str,
    step: str | None = None,
    nth: int = 1,
    kill_after_s: float | None = None,
) -> int:
    args = [sys.executable, str(WRITER), str(data_dir), mode]
    if step is not None:
        args += [step, str(nth)]
    process = subprocess.Popen(args, cwd=HERE, env=env, stderr=subprocess.PIPE, text=True)
    if kill_after_s is not None:
        time.sleep(kill_after_s)
        os.kill(process.pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode in (0, -signal.SIGKILL), stderr[-3000:]
    return process.returncode


@pytest.fixture
def writer_env(s3_endpoint: str, prefix: str) -> dict[str, str]:
    """The crash writer's environment: the Delta lake under a fresh prefix."""
    return {
        **os.environ,
        "LAKE_URL": f"s3://{MOTO_BUCKET}/{prefix}",
        "S3_ENDPOINT": s3_endpoint,
        "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
    }


def _per_batch(tables: list[pa.Table]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in tables:
        for value in table.column("batch_id").to_pylist():
            counts[value] = counts.get(value, 0) + 1
    return counts


def _assert_exactly_once_after_redelivery(env: dict[str, str], data_dir: Path) -> int:
    """Re-deliver every batch to a fresh lake process, check each batch id holds its rows
    once; returns the data files in the bucket no table version names (a killed writer's
    uploads that never got committed)."""
    tables = crash_tables(micro=True)
    expected = pa.concat_tables(tables).unify_dictionaries()
    os.environ.update({"LAKE_URL": env["LAKE_URL"], "S3_ENDPOINT": env["S3_ENDPOINT"]})
    try:
        with open_lake(data_dir) as lake:
            for table in tables:
                lake.append("EU", "acme", table)
            per_batch = lake.sql(
                "acme", "SELECT batch_id, count(*) AS n FROM telemetry GROUP BY batch_id"
            )
            stored = lake.sql("acme", "SELECT vehicle, path, ts, value, batch_id FROM telemetry")
            committed = {f.name for f in lake.files("acme")}
    finally:
        for key in ("LAKE_URL", "S3_ENDPOINT"):
            os.environ.pop(key)
    assert dict(
        zip(
            per_batch.column("batch_id").to_pylist(), per_batch.column("n").to_pylist(), strict=True
        )
    ) == _per_batch(tables)
    assert sorted_rows(stored) == sorted_rows(expected)
    prefix = env["LAKE_URL"].removeprefix(f"s3://{MOTO_BUCKET}/") + "/region=EU/"
    data = {
        k.removeprefix(prefix)
        for k in s3_keys(env["S3_ENDPOINT"], prefix)
        if k.endswith(".parquet") and "/_delta_log/" not in k
    }
    return len(data - committed)


APPEND_STEPS = [
    ("append.planned", 1),  # batch ids checked, nothing written
    ("append.writing", 1),  # every row handed to the writer, nothing committed
    ("append.writing", 3),  # the first two tables committed, the third mid-write
    ("append.committed", 1),  # the log entry written: the kill comes after the commit
    ("append.committed", 3),  # everything committed, the process never returned
]


@pytest.mark.parametrize(("step", "nth"), APPEND_STEPS, ids=[f"{s}#{n}" for s, n in APPEND_STEPS])
def test_a_writer_killed_around_its_commit_to_s3_loses_and_duplicates_nothing(
    writer_env: dict[str, str],
    tmp_path: Path,
    step: str,
    nth: int,
) -> None:
    assert _run_writer(writer_env, tmp_path, "append", step, nth) == -signal.SIGKILL
    _assert_exactly_once_after_redelivery(writer_env, tmp_path)


@pytest.mark.slow
def test_s3_writers_killed_at_random_moments_never_lose_or_duplicate_a_sample(
    writer_env: dict[str, str],
    tmp_path: Path,
    report_figure: object,
) -> None:
    rng = random.Random(20240502)
    killed, orphans = 0, 0
    for _ in range(6):  # appends and compactions over and over, killed anywhere
        if (
            _run_writer(writer_env, tmp_path, "loop", kill_after_s=rng.uniform(2.0, 8.0))
            == -signal.SIGKILL
        ):
            killed += 1
        orphans = _assert_exactly_once_after_redelivery(writer_env, tmp_path)
    assert killed == 6
    report_figure(  # type: ignore[operator]
        f"{killed} writers of the S3 Delta lake killed at random moments, each sample stored "
        f"once ({orphans} uploaded data files never committed)"
    )
