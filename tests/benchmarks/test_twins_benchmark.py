"""benchmarks/twins.py runs at a tiny size and ends with the JSON line the convention asks for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_twins_benchmark_quick_mode_ends_with_its_json_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "twins.py"), "--quick",
         "--vehicles", "100", "--paths", "5", "--baseline-vehicles", "10", "--repeats", "1",
         "--query-twins", "2000"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["database"] == "sqlite" and figures["values_per_pass"] == 500
    for key in ("updates_per_s", "orm_baseline_updates_per_s", "ratio", "p50_ms", "p90_ms"):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
    assert figures["ratio"] == pytest.approx(
        figures["updates_per_s"] / figures["orm_baseline_updates_per_s"], rel=0.02
    )
    assert figures["published_anchor_updates_per_s"] == 3200
    assert figures["query_twins"] == 2000 and 0 < figures["query_matches"] < 2000
    assert [k for k in figures if "ratio" in k] == ["ratio"]
