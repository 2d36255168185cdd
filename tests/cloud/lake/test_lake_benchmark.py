"""The lake benchmarks run, at a tiny size, and end with the JSON line the convention asks for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _run(script: str, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / script), "--quick", *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(figures, dict)
    return figures


def test_lake_query_benchmark_quick_mode_ends_with_its_json_figures(tmp_path: Path) -> None:
    figures = _run("lake_query.py", "--rows", "200000", "--repeats", "1",
                   "--data-dir", str(tmp_path / "lake"))
    assert figures["stored_values"] == 200_000
    for key in ("p50_ms", "baseline_p50_ms", "ratio", "scan_p50_ms", "scan_baseline_p50_ms",
                "scan_ratio", "append_rows_per_s"):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
    assert sorted(k for k in figures if "ratio" in k) == ["ratio", "scan_ratio"]
    assert 0 < figures["fleet_values"] < 200_000  # type: ignore[operator]


def test_lake_append_benchmark_quick_mode_ends_with_its_json_figures() -> None:
    figures = _run("lake_append.py", "--rows", "20000", "--appends", "2", "--repeats", "1")
    assert (figures["rows_per_append"], figures["appends"]) == (20_000, 2)
    for key in ("append_rows_per_s", "write_rows_per_s", "baseline_rows_per_s",
                "append_rows_per_cpu_s", "write_rows_per_cpu_s", "file_bytes",
                "baseline_file_bytes", "ratio"):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
    assert [k for k in figures if "ratio" in k] == ["ratio"]
