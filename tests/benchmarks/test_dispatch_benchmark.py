"""The dispatch benchmark runs, at a tiny size, and ends with the JSON line the convention asks
for (its figures are checked for shape and consistency, not speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_dispatch_benchmark_quick_mode_ends_with_its_json_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "dispatch.py"), "--quick",
         "--twins", "2000", "--baseline-vehicles", "40", "--repeats", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["vehicles"] == 2000 and figures["cores"] == 1
    for key in ("vehicles_per_s", "baseline_vehicles_per_s", "ratio", "peak_rss_mb"):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
    assert [k for k in figures if "ratio" in k] == ["ratio"]
    assert figures["goal_vehicles_per_s"] == 10_000
