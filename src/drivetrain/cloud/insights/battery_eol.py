"""Cycle of end of life of Li-ion cells from their early cycles (NASA PCoE battery data).

The data set's own criterion: end of life is the first discharge whose capacity is below
1.4 Ah, a 30 % fade from the rated 2 Ah. A prediction made at cycle ``n`` may use only the
cell's first ``n`` capacities.

Two predictors, compared in the same run:

- ``SimilarityEol`` (ours): the cell's current capacity level (trailing mean, which rides out
  the recovery bumps after rests) is located on each reference cell's own fade curve, and the
  cycles those cells still needed from that level to end of life are added to ``n`` (median over
  the references). Fade accelerates with age, so "how far to go from this capacity" transfers
  between cells much better than the early slope does.
- ``LinearEol`` (baseline): a straight line through the last 30 capacities, extrapolated.

A cell whose capacity never fell below the threshold in the data (B0007 stops at 1.4005 Ah)
has an unknown ("censored") end of life: its error is reported as a lower bound.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from drivetrain.core.errors import BadInputError

F64 = npt.NDArray[np.float64]

END_OF_LIFE_AH = 1.4
LEVEL_WINDOW = 9  # cycles in the trailing mean that sets the current capacity level
TREND_WINDOW = 40  # cycles of a reference curve's tail used to extend it past its last cycle
HORIZON = 1000  # cycles a reference curve is extended to
MAX_CELL_CYCLES = 100_000


class BatteryDataError(BadInputError):
    """A capacity table that is missing or malformed; names the file, line and column."""


def read_capacity_table(path: Path) -> dict[str, F64]:
    """Read ``capacity_per_cycle.csv`` (``battery,cycle_num,Capacity``) into one array per cell.

    Raises:
        BatteryDataError: missing file or column, a non-numeric or non-positive value, or cycles
            of a cell that are not 1, 2, 3, ... in order.
    """
    if not path.is_file():
        raise BatteryDataError(f"{path}: no such file")
    cells: dict[str, list[float]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        need = {"battery", "cycle_num", "Capacity"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise BatteryDataError(f"{path}: expected columns {sorted(need)}, got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            name = row["battery"]
            try:
                cycle = int(row["cycle_num"])
                capacity = float(row["Capacity"])
            except (TypeError, ValueError) as e:
                raise BatteryDataError(f"{path}:{line}: cycle_num/Capacity must be numbers") from e
            if not (math.isfinite(capacity) and capacity > 0):
                raise BatteryDataError(f"{path}:{line}: Capacity {capacity} must be positive Ah")
            series = cells.setdefault(name, [])
            if cycle != len(series) + 1 or len(series) >= MAX_CELL_CYCLES:
                raise BatteryDataError(
                    f"{path}:{line}: cell {name} cycle {cycle}; expected {len(series) + 1}"
                )
            series.append(capacity)
    if not cells:
        raise BatteryDataError(f"{path}: no rows")
    return {name: np.array(v, dtype=np.float64) for name, v in cells.items()}


def end_of_life_cycle(capacity: F64, threshold_ah: float = END_OF_LIFE_AH) -> int | None:
    """First cycle (1-based) whose capacity is below the threshold; ``None`` if never."""
    below = np.flatnonzero(capacity < threshold_ah)
    return int(below[0]) + 1 if below.size else None


def trailing_mean(values: F64, window: int = LEVEL_WINDOW) -> F64:
    """Mean of each sample's last ``window`` samples (fewer at the start)."""
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def _extended(curve: F64) -> F64:
    """A reference curve continued past its last cycle along its tail's straight-line trend."""
    tail = min(TREND_WINDOW, len(curve))
    cycles = np.arange(1, len(curve) + 1, dtype=np.float64)
    slope, intercept = np.polyfit(cycles[-tail:], curve[-tail:], 1)
    future = np.arange(len(curve) + 1, HORIZON + 1, dtype=np.float64)
    return np.concatenate([curve, intercept + slope * future])


class EolPredictor(Protocol):
    """Predicts the end-of-life cycle of a cell from its first capacities."""

    @property
    def name(self) -> str:
        """Short method name reported with each prediction."""
        ...

    def predict(self, early: F64) -> float:
        """End-of-life cycle (1-based, may be fractional or ``inf``) from ``early`` capacities."""
        ...


@dataclass(frozen=True)
class SimilarityEol:
    """Capacity-matched transfer of remaining cycles from reference cells (see module doc)."""

    references: Mapping[str, F64]
    threshold_ah: float = END_OF_LIFE_AH
    name: str = "similarity"

    def predict(self, early: F64) -> float:
        level = float(trailing_mean(early)[-1])
        remaining = []
        for curve in self.references.values():
            extended = _extended(curve)
            # The level is matched on the smoothed curve (same lag as ``level``); the end of
            # life is the data set's own, the first raw capacity below the threshold.
            at_level = np.flatnonzero(trailing_mean(extended) <= level)
            at_end = np.flatnonzero(extended < self.threshold_ah)
            if at_level.size and at_end.size:
                remaining.append(max(0, int(at_end[0] - at_level[0])))
        if not remaining:
            return math.inf
        return len(early) + float(np.median(remaining))


#: A fitted fade slower than this (Ah per cycle) is no fade: a real cell loses ~1e-3 a cycle.
_NO_FADE_AH_PER_CYCLE = 1e-9


@dataclass(frozen=True)
class LinearEol:
    """Straight line through the last ``window`` capacities, extrapolated to the threshold."""

    window: int = 30
    threshold_ah: float = END_OF_LIFE_AH
    name: str = "linear"

    def predict(self, early: F64) -> float:
        n = min(self.window, len(early))
        cycles = np.arange(len(early) - n + 1, len(early) + 1, dtype=np.float64)
        slope, intercept = np.polyfit(cycles, early[-n:], 1)
        if slope > -_NO_FADE_AH_PER_CYCLE:  # flat or rising (round-off leaves ~1e-17, not 0)
            return math.inf
        return max(float(len(early)), float((self.threshold_ah - intercept) / slope))


@dataclass(frozen=True)
class EolPrediction:
    """One cell, one prediction point, one method."""

    cell: str
    method: str
    known_cycles: int
    predicted_eol: float
    true_eol: int | None  # None: the cell never reached end of life in the data
    last_cycle: int

    @property
    def error_cycles(self) -> float | None:
        """Predicted minus true end-of-life cycle; ``None`` when the true one is unknown."""
        return None if self.true_eol is None else self.predicted_eol - self.true_eol

    @property
    def error_lower_bound(self) -> float | None:
        """For a censored cell predicted to fail inside the data: how early, at least."""
        if self.true_eol is not None or self.predicted_eol > self.last_cycle:
            return None
        return self.last_cycle - self.predicted_eol

    def to_dict(self) -> dict[str, object]:
        return {
            "cell": self.cell,
            "method": self.method,
            "known_cycles": self.known_cycles,
            "predicted_eol": None if math.isinf(self.predicted_eol) else round(self.predicted_eol, 1),
            "true_eol": self.true_eol,
            "error_cycles": None if self.error_cycles is None else round(self.error_cycles, 1),
            "early_by_at_least": self.error_lower_bound,
        }


def leave_one_cell_out(
    cells: Mapping[str, F64], known_cycles: Sequence[int] = (40, 60, 80)
) -> list[EolPrediction]:
    """Predict each cell's end of life from its first ``n`` cycles, for each ``n``, with the
    other cells as references (never the cell itself), by both methods.

    Raises:
        ValueError: fewer than two cells, or ``n`` not below a cell's length.
    """
    if len(cells) < 2:
        raise ValueError("leave-one-cell-out needs at least two cells")
    out = []
    for name, curve in cells.items():
        references = {k: v for k, v in cells.items() if k != name}
        methods: list[EolPredictor] = [SimilarityEol(references), LinearEol()]
        for n in known_cycles:
            if not 2 <= n < len(curve):
                raise ValueError(f"cell {name} has {len(curve)} cycles; cannot predict from {n}")
            for method in methods:
                out.append(
                    EolPrediction(
                        cell=name,
                        method=method.name,
                        known_cycles=n,
                        predicted_eol=method.predict(curve[:n]),
                        true_eol=end_of_life_cycle(curve),
                        last_cycle=len(curve),
                    )
                )
    return out


def mean_abs_error(predictions: Sequence[EolPrediction], method: str, known: int) -> float:
    """Mean |error| in cycles over the cells whose end of life is known."""
    errors = [
        abs(p.error_cycles)
        for p in predictions
        if p.method == method and p.known_cycles == known and p.error_cycles is not None
    ]
    return float(np.mean(errors)) if errors else math.nan
