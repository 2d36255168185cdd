"""Trip energy: OBD trip logs, the physics prior, the hybrid model and its intervals."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from drivetrain.cloud.insights.energy import (
    HybridEnergyModel,
    PhysicsEnergy,
    TripInput,
    leave_one_trip_out,
    score,
)
from drivetrain.cloud.insights.trip_logs import TripLogError, e208_trip_files, read_obd_trip

PROJECT_ROOT = Path(__file__).resolve().parents[3]
HEADER = (
    'time,"Ambient temperature (℃)","DC Battery Temperature (℃)","HV EV Battery Power (kW)",'
    '"State of charge (%)","State of health (%)","Vehicle speed (km/h)"'
)


def synthetic_trip(name: str, ambient_c: float, cruise_kmh: float, minutes: int = 10) -> TripInput:
    t = np.arange(0, minutes * 60, 2.0)
    speed = np.clip(cruise_kmh * np.sin(np.pi * t / t[-1]) * 1.3, 0, cruise_kmh)
    return TripInput(name, speed, np.full(len(t), ambient_c), 0.8, ambient_c + 5, 0.98)


def test_trip_log_is_read_sparse_and_its_energy_integrated(tmp_path: Path) -> None:
    rows = [HEADER]
    for i in range(10):
        clock = f"23:59:{50 + i:02d}.000" if i < 10 else ""
        rows.append(f"{clock},5,10,{20 if i % 2 else ''},80,99,{50 + i}")
    rows.append("00:00:00.000,5,10,20,80,99,60")  # past midnight
    (tmp_path / "trip.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    trip = read_obd_trip(tmp_path / "trip.csv")
    t, _ = trip.samples("HV EV Battery Power (kW)")
    assert t[-1] == pytest.approx(86400.0)
    assert trip.measured_energy_kwh() == pytest.approx(20 * 9 / 3600)


def test_trip_log_without_power_names_the_missing_signal(tmp_path: Path) -> None:
    (tmp_path / "trip.csv").write_text('time,"Vehicle speed (km/h)"\n10:00:00.0,5\n10:00:01.0,6\n')
    with pytest.raises(TripLogError, match="HV EV Battery Power"):
        read_obd_trip(tmp_path / "trip.csv")


def test_trip_log_with_a_bad_clock_is_refused(tmp_path: Path) -> None:
    (tmp_path / "trip.csv").write_text(HEADER + "\nnoon,5,10,20,80,99,50\n", encoding="utf-8")
    with pytest.raises(TripLogError):
        read_obd_trip(tmp_path / "trip.csv")


def test_physics_costs_more_energy_in_the_cold_and_uphill() -> None:
    mild = synthetic_trip("mild", 20.0, 60.0)
    cold = synthetic_trip("cold", -5.0, 60.0)
    uphill = TripInput("up", mild.speed_kmh, mild.ambient_c, 0.8, 25.0, 0.98, grade=np.full(len(mild.speed_kmh), 0.03))
    kwh = PhysicsEnergy().predict_kwh([mild, cold, uphill])
    assert kwh[1] > kwh[0] and kwh[2] > 1.5 * kwh[0]


def test_hybrid_learns_a_temperature_dependent_bias_and_covers_its_trips() -> None:
    rng = np.random.default_rng(0)
    trips = [synthetic_trip(f"t{i}", float(a), float(v)) for i, (a, v) in enumerate(
        zip(rng.uniform(-10, 25, 14), rng.uniform(30, 90, 14), strict=True))]  # fmt: skip
    physics = PhysicsEnergy().predict_kwh(trips)
    # the "real car" uses 2 % more per degree below 20 °C, with 3 % noise
    ambient = np.array([t.features()["ambient_c"] for t in trips])
    measured = physics * (1 + 0.02 * (20 - ambient)) * rng.normal(1, 0.03, len(trips))
    model = HybridEnergyModel().fit(trips[:-2], measured[:-2], physics[:-2])
    predictions = model.predict(trips[-2:], physics[-2:])
    for p, m in zip(predictions, measured[-2:], strict=True):
        assert abs(p.kwh / m - 1) < 0.1
        assert p.low_kwh < p.kwh < p.high_kwh
    expected, low, high = predictions[0].range_km(40.0)
    assert low < expected < high
    assert "ambient_c" in json.dumps(model.card())


def test_hybrid_refuses_too_few_trips() -> None:
    trips = [synthetic_trip("a", 5, 50)] * 3
    with pytest.raises(ValueError, match="at least 5 trips"):
        HybridEnergyModel().fit(trips, np.ones(3), np.ones(3))


def test_scores_count_coverage_only_with_an_interval() -> None:
    s = score(np.array([1.1, 0.9]), np.array([1.0, 1.0]), np.array([1.0, 0.8]), np.array([1.2, 0.85]))
    assert s.median_ape == pytest.approx(0.1) and s.total_error == pytest.approx(0.0)
    assert s.coverage_80 == 0.5
    assert score(np.array([1.0]), np.array([1.0])).coverage_80 is None


@pytest.mark.shared_data
def test_hybrid_beats_physics_on_a_subsample_of_real_trips(
    shared_data: Path, report_figure: Callable[[str], None]
) -> None:
    files = e208_trip_files(shared_data / "ev-trips" / "peugeot-e208")[::2]
    records = [read_obd_trip(p) for p in files]
    trips = [TripInput.from_record(r) for r in records]
    measured = np.array([r.measured_energy_kwh() for r in records])
    predictions, physics = leave_one_trip_out(trips, measured)
    ours = score(np.array([p.kwh for p in predictions]), measured)
    base = score(physics, measured)
    report_figure(
        f"e-208, {len(trips)} of 29 trips, leave one out: median |error| ours {ours.median_ape:.1%}, "
        f"physics {base.median_ape:.1%}; total ours {ours.total_error:+.1%}, physics {base.total_error:+.1%}"
    )
    assert ours.median_ape < base.median_ape
    assert abs(ours.total_error) < abs(base.total_error)


@pytest.mark.shared_data
def test_energy_benchmark_quick_mode_ends_with_ours_and_baseline(shared_data: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "energy.py"), "--quick",
         "--data-dir", str(shared_data / "ev-trips" / "peugeot-e208")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for side in ("ours", "baseline"):
        assert set(figures[side]) == {"median_ape", "mape", "total_error", "coverage_80"}
    assert 0 <= figures["ours"]["coverage_80"] <= 1
    assert figures["peak_rss_mb"] > 0
