"""benchmarks/director.py: a tiny run signs every vehicle's Director metadata and ends with one
JSON line of consistent figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_director_benchmark_tiny_run_prints_consistent_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "director.py"), "--quick",
         "--vehicles", "30", "--baseline-sample", "5"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["vehicles"] == 30 and figures["baseline_vehicles"] == 5
    assert figures["vehicles_per_s"] > 0 and figures["baseline_vehicles_per_s"] > 0
    assert abs(figures["ratio"] - figures["vehicles_per_s"] / figures["baseline_vehicles_per_s"]) < 0.05
    assert "30 vehicles" in result.stderr
