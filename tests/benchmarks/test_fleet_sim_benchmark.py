"""benchmarks/fleet_sim.py runs, at a tiny size, and ends with the JSON line the convention asks
for; its realistic run has an ingest worker of its own store everything the fleet sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_fleet_sim_benchmark_quick_mode_ends_with_its_json_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "fleet_sim.py"), "--quick", "--vehicles", "20",
         "--seconds", "5", "--repeats", "1", "--baseline-vehicles", "1", "--warmup", "5"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["vehicles"] == 20 and figures["repeats"] == 1
    assert figures["signals_per_vehicle"] >= 50  # the floor: 50 VSS signals per vehicle
    for key in (
        "signals_per_s",
        "baseline_signals_per_s",
        "ratio",
        "frames_per_s",
        "speedup_vs_real_time",
    ):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
    assert [k for k in figures if "ratio" in k] == ["ratio"]
    assert figures["telemetry_messages_delivered"] > 0
    assert set(figures["stage_wall_s_per_simulated_s"]) == {
        "world_s",
        "synthesis_s",
        "decode_s",
        "agents_s",
    }
    assert figures["ratio"] == pytest.approx(
        figures["signals_per_s"] / figures["baseline_signals_per_s"], rel=0.5
    )
    assert figures["ingest"] is False
    realistic = figures["realistic"]
    assert (realistic["vehicles"], realistic["ingest"]) == (20, True)
    assert realistic["samples_sent"] > 0 and realistic["ingest_keeps_up"] is True
    # every sample sent reached an outcome; each vehicle's inventory event and privacy sync
    # report (sent once at start) count too
    events_per_vehicle = 2
    assert (
        realistic["samples_sent"]
        <= realistic["samples_ingested"]
        <= realistic["samples_sent"] + events_per_vehicle * realistic["vehicles"]
    )
    assert realistic["speedup_vs_real_time"] == pytest.approx(
        1 / realistic["sim_cpu_s_per_simulated_s"], rel=0.01
    )
    assert realistic["sim_core"] != realistic["ingest_core"] or len(os.sched_getaffinity(0)) == 1
