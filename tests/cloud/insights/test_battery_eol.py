"""Battery end of life from early cycles: the capacity table, both predictors, the bench."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.insights.battery_eol import (
    BatteryDataError,
    LinearEol,
    SimilarityEol,
    end_of_life_cycle,
    leave_one_cell_out,
    mean_abs_error,
    read_capacity_table,
)


def fading_cell(start: float, rate: float, cycles: int) -> np.ndarray:
    """Capacity that fades slowly, then faster (the shape of the NASA cells)."""
    k = np.arange(cycles, dtype=float)
    return start - rate * k - 2e-5 * rate / 0.002 * k**2


def test_end_of_life_is_the_first_cycle_below_1_4_ah() -> None:
    assert end_of_life_cycle(np.array([1.5, 1.41, 1.39, 1.42])) == 3
    assert end_of_life_cycle(np.array([1.5, 1.41])) is None


def test_capacity_table_with_a_gap_in_cycles_names_the_line(tmp_path: Path) -> None:
    table = tmp_path / "capacity_per_cycle.csv"
    table.write_text("battery,cycle_num,Capacity\nB1,1,1.8\nB1,3,1.7\n")
    with pytest.raises(BatteryDataError, match=":3: cell B1 cycle 3; expected 2"):
        read_capacity_table(table)


def test_capacity_table_with_a_negative_capacity_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "capacity_per_cycle.csv"
    table.write_text("battery,cycle_num,Capacity\nB1,1,-1.8\n")
    with pytest.raises(BatteryDataError, match="must be positive"):
        read_capacity_table(table)


def test_similarity_transfers_the_remaining_cycles_of_reference_cells() -> None:
    references = {"a": fading_cell(1.9, 0.002, 200), "b": fading_cell(1.9, 0.002, 200)}
    cell = fading_cell(1.9, 0.002, 200)
    truth = end_of_life_cycle(cell)
    assert truth is not None
    assert SimilarityEol(references).predict(cell[:60]) == pytest.approx(truth, abs=3)


def test_linear_baseline_never_predicts_before_the_cycles_it_has_seen() -> None:
    flat = np.full(50, 1.8)
    assert LinearEol().predict(flat) == float("inf")
    falling = np.linspace(1.5, 1.38, 50)
    assert LinearEol().predict(falling) >= 50


def test_bench_battery_prints_errors_in_cycles(tmp_path: Path) -> None:
    rows = ["battery,cycle_num,Capacity"]
    for name, rate in (("C1", 0.002), ("C2", 0.0025), ("C3", 0.0018)):
        rows += [f"{name},{i + 1},{c}" for i, c in enumerate(fading_cell(1.9, rate, 160))]
    (tmp_path / "capacity_per_cycle.csv").write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(app, ["bench", "battery", "--data-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {p["cell"] for p in out["predictions"]} == {"C1", "C2", "C3"}
    assert out["summary"]["similarity_mae_cycles_at_80"] < 10


@pytest.mark.shared_data
def test_nasa_cells_end_of_life_from_80_cycles_within_ten_cycles(
    shared_data: Path, report_figure: Callable[[str], None]
) -> None:
    cells = read_capacity_table(shared_data / "nasa-battery" / "capacity_per_cycle.csv")
    predictions = leave_one_cell_out(cells, (40, 60, 80))
    ours = {n: mean_abs_error(predictions, "similarity", n) for n in (40, 60, 80)}
    linear = {n: mean_abs_error(predictions, "linear", n) for n in (40, 60, 80)}
    report_figure(
        "NASA cells, end of life from early cycles, mean |error| (cycles) at 40/60/80 known: "
        + " / ".join(f"{ours[n]:.1f}" for n in (40, 60, 80))
        + " (linear " + " / ".join(f"{linear[n]:.1f}" for n in (40, 60, 80)) + ")"
    )
    assert ours[80] < 10
    assert all(ours[n] < linear[n] for n in (40, 60, 80))
