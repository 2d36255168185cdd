"""benchmarks/ingest.py runs at a tiny size and ends with the JSON line the convention asks for
(a correctness check of the script, not a timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _benchmark(*args: str) -> dict[str, Any]:
    """The JSON figures of ``benchmarks/ingest.py --quick ARGS`` (it must succeed)."""
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "ingest.py"), "--quick", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def test_ingest_benchmark_quick_mode_ends_with_its_json_figures() -> None:
    figures = _benchmark(
        "--vehicles",
        "3",
        "--batches",
        "6",
        "--micro-batch",
        "4",
        "--baseline-batches",
        "2",
        "--repeats",
        "1",
        "--realistic-vehicles",
        "12",
        "--realistic-messages",
        "60",
    )
    assert figures["mode"] == "embedded" and figures["cores"] == 1
    assert figures["samples"] == 6 * figures["samples_per_envelope"] == 30_000
    for key in ("signals_per_s", "signals_per_cpu_s", "baseline_signals_per_s", "ratio"):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
    assert [k for k in figures if "ratio" in k] == ["ratio"]
    assert figures["ratio"] == pytest.approx(
        figures["signals_per_s"] / figures["baseline_signals_per_s"], rel=0.02
    )
    realistic = figures["realistic"]  # the shape ../shared/checks/benchmarks reads
    assert realistic["transport"] == "mqtt" and realistic["tenants"] == 3
    assert realistic["small"]["samples_per_message"] == 100
    assert realistic["large"]["samples_per_message"] > 1_000
    for key in ("signals_per_cpu_s", "messages_per_cpu_s", "baseline_signals_per_cpu_s"):
        assert isinstance(realistic[key], int) and realistic[key] > 0, key
    assert realistic["messages_per_cpu_s"] == realistic["small"]["messages_per_cpu_s"]
    assert realistic["signals_per_cpu_s"] == realistic["large"]["signals_per_cpu_s"]
    for shape in ("small", "large"):  # timed draining a backlog, and live beside it
        measured = realistic[shape]
        # the live half follows the vehicles' session_opens
        assert measured["live"]["messages"] == measured["messages"] // 2 + measured["sessions"]
        assert 1 <= measured["messages_per_micro_batch"] <= 500
        assert measured["live"]["messages_per_cpu_s"] > 0
        assert measured["messages_per_cpu_s"] * measured["us_per_message"] == pytest.approx(
            1e6, rel=0.02
        )


def test_worker_stages_time_each_stage_of_the_worker_process() -> None:
    figures = _benchmark(
        "--realistic-only", "--worker-stages", "--realistic-vehicles", "12",
        "--realistic-messages", "60",
    )  # fmt: skip
    small = figures["realistic"]["small"]
    stages = small["worker_stages_us_per_message"]
    # every stage ran (a stage the worker never reached would be missing) and each part costs
    # no more than the stage it is part of
    for stage in ("pipeline/opening/Arrow body", "pipeline/commit/dead letters",
                  "worker: acknowledging", "thread drivetrain-ingest"):  # fmt: skip
        assert stages[stage] > 0, stage
    for stage, cost in stages.items():
        if "/" in stage:
            assert cost <= stages[stage.rsplit("/", 1)[0]] * 1.01 + 0.2, stage
    assert stages["pipeline"] <= stages["thread drivetrain-ingest"] * 1.01 + 0.2
