"""The benchmarks run, at a tiny size, and end with the JSON line the convention asks for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.shared_data
def test_can_decode_benchmark_quick_mode_ends_with_its_json_figures(shared_data: Path) -> None:
    assert (shared_data / "comma2k19" / "raw_can.csv").is_file()
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "can_decode.py"), "--quick", "--frames", "20000", "--repeats", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["frames"] == 20_000
    for key in ("batch_frames_per_cpu_s", "cantools_frames_per_cpu_s", "pipeline_frames_per_s",
                "cantools_pipeline_frames_per_s", "decode_ratio", "pipeline_ratio"):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
    assert sorted(k for k in figures if "ratio" in k) == ["decode_ratio", "pipeline_ratio"]
    assert figures["decode_ratio"] == pytest.approx(
        figures["batch_frames_per_cpu_s"] / figures["cantools_frames_per_cpu_s"], rel=0.01
    )
    assert figures["signal_values"] > figures["frames"]
    realistic = figures["realistic"]
    assert realistic["cores"] == 1 and realistic["frames"] == 20_000
    assert realistic["pipeline_ratio"] == pytest.approx(
        realistic["pipeline_frames_per_cpu_s"] / realistic["cantools_pipeline_frames_per_cpu_s"],
        rel=0.5,
    )
    assert figures["peak_rss_mb"] > 0


def test_privacy_benchmark_ends_with_erasure_and_export_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "privacy.py"), "--values", "200000",
         "--vehicles", "200", "--erase", "10", "--repeats", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["values"] == figures["exported_rows"] == figures["imported_rows"] == 200_000
    assert figures["erase_rows_removed"] > 0 and figures["erase_files_rewritten"] > 0
    for key in ("erase_seconds", "baseline_erase_seconds", "export_rows_per_s",
                "import_rows_per_s", "baseline_copy_rows_per_s", "erase_ratio", "export_ratio"):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key


def test_erasure_benchmark_shreds_and_checks_nothing_of_theirs_reads() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "erasure.py"), "--values", "100000",
         "--vehicles", "100", "--erase", "40", "--repeats", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["erase_vehicles"] == figures["keys_destroyed"] == 40
    assert figures["lake_values"] == 100_000 and figures["lake_files"] == 100
    assert figures["erased_rows_read"] == 0
    assert figures["kept_rows_read"] == figures["kept_rows_expected"] > 0
    assert figures["backup_erased_files"] == 40 and figures["backup_files_checked"] == 40
    assert figures["backup_files_duckdb_read"] == figures["backup_files_key_read"] == 0
    for key in ("key_work_s", "shred_s", "baseline_s", "ratio", "peak_rss_mb"):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key


@pytest.mark.shared_data
def test_ids_benchmark_quick_mode_ends_with_its_json_figures(shared_data: Path) -> None:
    assert (shared_data / "road").is_dir()
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "ids.py"), "--quick"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) == {"road", "simulator"}
    for scope in figures.values():
        assert set(scope) == {"ours", "baseline"}
        for captures in scope.values():
            for c in captures.values():
                assert {"auroc", "precision", "recall", "f1", "latency_s", "us_per_frame",
                        "false_alerts_per_h"} <= set(c)
    assert set(figures["simulator"]["ours"]) == {"flooding", "fuzzing_random_ids", "fuzzing_known_ids",
                                                 "replay", "spoofing", "masquerade"}
