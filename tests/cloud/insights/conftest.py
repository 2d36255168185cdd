"""Factories for the insights tests: small synthetic run-to-failure fleets in C-MAPSS layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivetrain.cloud.insights.cmapss import SENSOR_COLUMNS, SETTING_COLUMNS

#: The six operating conditions of FD002/FD004 (altitude kft, Mach, throttle angle).
SIX_CONDITIONS = np.array(
    [[0, 0, 100], [10, 0.25, 100], [20, 0.7, 100], [25, 0.62, 60], [35, 0.84, 100], [42, 0.84, 100]]
)


def synthetic_fleet(
    units: int, *, seed: int, conditions: int = 1, truncate: bool = False
) -> tuple[list[list[float]], list[float]]:
    """Rows ``unit,cycle,settings,sensors`` of engines whose sensors drift exponentially toward
    failure (plus condition offsets and noise); with ``truncate``, each stops early and the
    true RUL at its last row is returned too."""
    rng = np.random.default_rng(seed)
    rows: list[list[float]] = []
    true_rul: list[float] = []
    gains = np.random.default_rng(99).normal(0, 1, 21)  # the same engine type in every fleet
    for unit in range(1, units + 1):
        life = int(rng.integers(130, 260))
        stop = int(rng.integers(40, life - 5)) if truncate else life
        offset = rng.normal(0, 0.3, 21)
        for cycle in range(1, stop + 1):
            cond = SIX_CONDITIONS[rng.integers(conditions)] if conditions > 1 else SIX_CONDITIONS[0]
            settings = cond + rng.normal(0, [0.002, 0.0003, 0.0001])
            wear = np.exp((cycle - life) / 40.0)
            sensors = 500 + 10 * cond[0] + gains * 3 * wear + offset + rng.normal(0, 0.2, 21)
            sensors[[0, 4, 9]] = 518.67  # constant sensors, as in the real data
            rows.append([unit, cycle, *settings, *sensors])
        if truncate:
            true_rul.append(float(life - stop))
    return rows, true_rul


def write_runs(path: Path, rows: list[list[float]]) -> None:
    header = ",".join(["unit", "cycle", *SETTING_COLUMNS, *SENSOR_COLUMNS])
    lines = [header] + [
        ",".join([str(int(r[0])), str(int(r[1]))] + [f"{v:.6f}" for v in r[2:]]) for r in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def synthetic_cmapss(tmp_path: Path) -> Path:
    """A folder with train/test/RUL files of a small synthetic single-condition subset FD001."""
    train, _ = synthetic_fleet(24, seed=1)
    test, rul = synthetic_fleet(12, seed=2, truncate=True)
    write_runs(tmp_path / "train_FD001.csv", train)
    write_runs(tmp_path / "test_FD001.csv", test)
    (tmp_path / "RUL_FD001.txt").write_text("\n".join(f"{int(r)}" for r in rul) + "\n")
    return tmp_path
