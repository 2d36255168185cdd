"""Remaining useful life: C-MAPSS loading, causal features, conditions, the model, the bench."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.insights.cmapss import CmapssFormatError, EngineRuns, load_subset, read_runs
from drivetrain.cloud.insights.rul_features import (
    ConditionNormaliser,
    WindowSpec,
    trailing_mean,
    trailing_slope,
    window_features,
)
from drivetrain.cloud.insights.rul_model import RulConfig, RulModel, evaluate, nasa_score

from .conftest import synthetic_fleet, write_runs

SMALL = RulConfig(members=1, rounds=120)


def runs_of(rows: list[list[float]]) -> EngineRuns:
    array = np.array(rows)
    return EngineRuns(array[:, 0].astype(np.int64), array[:, 1].astype(np.int64), array[:, 2:5], array[:, 5:])


def test_a_missing_sensor_column_is_named(tmp_path: Path) -> None:
    (tmp_path / "train_FD001.csv").write_text("unit,cycle,setting_1\n1,1,0.0\n")
    with pytest.raises(CmapssFormatError, match="missing column.*setting_2"):
        read_runs(tmp_path / "train_FD001.csv")


def test_rows_out_of_cycle_order_are_refused(tmp_path: Path) -> None:
    rows, _ = synthetic_fleet(1, seed=0)
    rows[3], rows[4] = rows[4], rows[3]
    write_runs(tmp_path / "x.csv", rows)
    with pytest.raises(CmapssFormatError, match="sorted by unit"):
        read_runs(tmp_path / "x.csv")


def test_true_rul_count_must_match_the_test_units(synthetic_cmapss: Path) -> None:
    (synthetic_cmapss / "RUL_FD001.txt").write_text("10\n20\n")
    with pytest.raises(CmapssFormatError, match="2 values for 12 test units"):
        load_subset(synthetic_cmapss, "FD001")


def test_unknown_subset_is_refused(synthetic_cmapss: Path) -> None:
    with pytest.raises(CmapssFormatError, match="FD009"):
        load_subset(synthetic_cmapss, "FD009")


def test_trailing_slope_matches_least_squares_within_each_unit() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(40, 2))
    x = np.concatenate([np.arange(1, 21), np.arange(1, 21)]).astype(float)
    start = np.repeat([0, 20], 20)
    slopes = trailing_slope(values, x, start, window=7)
    means = trailing_mean(values, start, window=7)
    for row in (5, 19, 21, 33):
        lo = max(start[row], row - 6)
        if row - lo >= 1:
            assert slopes[row, 1] == pytest.approx(np.polyfit(x[lo : row + 1], values[lo : row + 1, 1], 1)[0])
        assert means[row, 0] == pytest.approx(values[lo : row + 1, 0].mean())


def test_features_of_a_truncated_engine_equal_the_full_engine_at_that_cycle() -> None:
    rows, _ = synthetic_fleet(3, seed=4)
    full = runs_of(rows)
    normaliser = ConditionNormaliser().fit(full)
    spec = WindowSpec()
    features_full, _ = window_features(normaliser.transform(full), full, normaliser.sensor_names(), spec)
    cut = full.truncate({1: 50, 2: 80, 3: 120})
    features_cut, _ = window_features(normaliser.transform(cut), cut, normaliser.sensor_names(), spec)
    for unit, cycle in ((1, 50), (2, 80), (3, 120)):
        i_full = np.flatnonzero((full.unit == unit) & (full.cycle == cycle))[0]
        i_cut = np.flatnonzero((cut.unit == unit) & (cut.cycle == cycle))[0]
        np.testing.assert_allclose(features_cut[i_cut], features_full[i_full])


@pytest.mark.parametrize(("conditions", "expected"), [(1, 1), (6, 6)])
def test_operating_conditions_are_found_without_being_told(conditions: int, expected: int) -> None:
    rows, _ = synthetic_fleet(6, seed=5, conditions=conditions)
    normaliser = ConditionNormaliser().fit(runs_of(rows))
    assert normaliser.n_conditions == expected
    assert set(normaliser.sensor_names()).isdisjoint({"s1", "s5", "s10"})  # the constant ones


def test_normaliser_round_trips_through_its_dict() -> None:
    rows, _ = synthetic_fleet(4, seed=6, conditions=6)
    runs = runs_of(rows)
    normaliser = ConditionNormaliser().fit(runs)
    again = ConditionNormaliser.from_dict(json.loads(json.dumps(normaliser.to_dict())))
    np.testing.assert_allclose(again.transform(runs), normaliser.transform(runs))


def test_late_predictions_cost_more_than_early_ones_in_the_nasa_score() -> None:
    actual = np.array([50.0])
    assert nasa_score(actual + 10, actual) > nasa_score(actual - 10, actual) > 0


def test_model_learns_remaining_life_on_a_six_condition_fleet() -> None:
    train, _ = synthetic_fleet(30, seed=7, conditions=6)
    test, rul = synthetic_fleet(15, seed=8, conditions=6, truncate=True)
    model = RulModel.fit(runs_of(train), SMALL)
    result = evaluate(model, "synthetic", runs_of(test), np.array(rul))
    naive = float(np.sqrt(np.mean((np.minimum(rul, 125) - np.mean(np.minimum(rul, 125))) ** 2)))
    assert result.conditions == 6
    assert result.rmse < 0.6 * naive


def test_bench_rul_writes_the_protocol_figures(synthetic_cmapss: Path, tmp_path: Path) -> None:
    out = tmp_path / "rul.json"
    result = CliRunner().invoke(
        app,
        ["bench", "rul", "--dataset", "cmapss", "--data-dir", str(synthetic_cmapss),
         "--subset", "FD001", "--members", "1", "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "RMSE" in result.output and "FD001" in result.output
    figures = json.loads(out.read_text())
    assert set(figures) >= {"subset", "rmse", "rmse_raw", "score", "train_s"}
    assert figures["subset"] == "FD001" and figures["rmse"] > 0


def test_bench_rul_names_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "rul", "--data-dir", str(tmp_path), "--subset", "FD003"])
    assert result.exit_code == 1
    assert "train_FD003.csv: no such file" in result.output


@pytest.mark.shared_data
def test_rul_on_real_fd001_beats_a_constant_guess_with_a_fraction_of_the_data(
    shared_data: Path, report_figure: Callable[[str], None]
) -> None:
    data = load_subset(shared_data / "cmapss", "FD001")
    train = data.train.take_units(data.train.units[:40])
    model = RulModel.fit(train, SMALL)
    result = evaluate(model, "FD001", data.test, data.test_rul)
    report_figure(f"C-MAPSS FD001, 40 of 100 training engines, one small model: RMSE {result.rmse:.2f}")
    assert result.rmse < 18.0  # a constant guess scores ~41; the full model ~10.3
